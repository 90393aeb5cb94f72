#!/bin/bash
# Runs real Postfix, Dovecot and sshd in a network namespace and drives clients
# at them from a second namespace, to collect real log lines. 198.18.0.0/15 only.
set -u
S=${TMPDIR:-/tmp}/plab-s$$; NS=pls$$; NC=plc$$; VS=pvs$$; VC=pvc$$
PLAIN=${PLAIN:-no}
mkdir -p $S/run $S/home $S/pf $S/spool $S/data; chown postfix $S/data
chmod 755 $S
cleanup() {
  postfix -c $S/pf stop >/dev/null 2>&1
  [ -f $S/run/master.pid ] && kill $(cat $S/run/master.pid) 2>/dev/null
  [ -f $S/sshd.pid ] && kill $(cat $S/sshd.pid) 2>/dev/null
  sleep 1
  kill $DNSPID 2>/dev/null; rm -rf /etc/netns/$NS
  ip netns del $NS 2>/dev/null; ip netns del $NC 2>/dev/null
  rm -rf $S
}
trap cleanup EXIT
ip netns add $NS; ip netns add $NC
ip link add $VS type veth peer name $VC
ip link set $VS netns $NS; ip link set $VC netns $NC
ip -n $NS addr add 198.18.7.1/24 dev $VS; ip -n $NC addr add 198.18.7.2/24 dev $VC
ip -n $NS addr add fd00:7::1/64 dev $VS nodad; ip -n $NC addr add fd00:7::2/64 dev $VC nodad
for n in $NS $NC; do ip -n $n link set lo up; done
ip -n $NS link set $VS up; ip -n $NC link set $VC up
echo 'alice:{PLAIN}secret' > $S/passwd
cat > $S/dovecot.conf <<EOC
base_dir = $S/run
state_dir = $S/state
log_path = $S/dovecot.log
protocols = imap pop3
listen = 198.18.7.1, fd00:7::1
ssl = no
disable_plaintext_auth = $PLAIN
auth_mechanisms = ${MECHS:-plain login cram-md5}
auth_verbose = ${AUTHV:-yes}
passdb {
  driver = ${PASSDB:-passwd-file}
  args = ${PASSDBARGS:-scheme=PLAIN $S/passwd}
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$S/home/%u
}
mail_location = maildir:$S/home/%u/Maildir
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
EOC
mkdir -p $S/state
mkdir -p /etc/netns/$NS; echo "nameserver 198.18.7.1" > /etc/netns/$NS/resolv.conf
ip netns exec $NS python3 $(dirname "$0")/dns.py 198.18.7.1 & DNSPID=$!
ip netns exec $NS dovecot -c $S/dovecot.conf || exit 1
# Postfix
cat > $S/pf/main.cf <<EOC
compatibility_level = 3.6
queue_directory = $S/spool
data_directory = $S/data
maillog_file = $S/postfix.log
maillog_file_prefixes = ${TMPDIR:-/tmp}
myhostname = mx.lab.test
mydomain = lab.test
mydestination = lab.test
mynetworks = 127.0.0.0/8
inet_interfaces = 198.18.7.1, [fd00:7::1]
inet_protocols = all
smtpd_sasl_type = dovecot
smtpd_sasl_path = $S/run/auth-postfix
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_data_restrictions = reject_unauth_pipelining
postscreen_greet_action = enforce
postscreen_dnsbl_sites = bl.lab.test*3
postscreen_dnsbl_threshold = 2
postscreen_dnsbl_action = enforce
postscreen_greet_wait = 2s
smtpd_hard_error_limit = 4
smtpd_soft_error_limit = 2
smtpd_error_sleep_time = 0
alias_maps =
alias_database =
local_recipient_maps =
EOC
cat > $S/pf/master.cf <<EOC
198.18.7.1:25 inet n - n - 1 postscreen
[fd00:7::1]:25 inet n - n - - smtpd
smtpd pass - - n - - smtpd
dnsblog unix - - n - 0 dnsblog
198.18.7.1:587 inet n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_sasl_auth_enable=yes
198.18.7.1:465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_sasl_auth_enable=yes
198.18.7.1:2525 inet n - n - - smtpd -o syslog_name=postfix-out/smtpd -o smtpd_sasl_auth_enable=yes
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOC
script -qc "ip netns exec $NS postfix -c $S/pf start" /dev/null | tail -5
# sshd
ssh-keygen -q -t ed25519 -N '' -f $S/hostkey
cat > $S/sshd_config <<EOC
ListenAddress 198.18.7.1:22
ListenAddress [fd00:7::1]:22
HostKey $S/hostkey
PidFile $S/sshd.pid
MaxAuthTries 3
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin yes
EOC
mkdir -p /run/sshd
ip netns exec $NS /usr/sbin/sshd -f $S/sshd_config -E $S/sshd.log
sleep 1
ip netns exec $NC python3 $(dirname "$0")/client.py ${CLIENTARGS:-all}
sleep 3
cp $S/dovecot.log ${OUT:-.}/out-dovecot-$PLAIN-${AUTHV:-yes}.log
cat $S/postfix.log >&2; cp $S/postfix.log ${OUT:-.}/out-postfix-$PLAIN-${AUTHV:-yes}.log
cp $S/sshd.log ${OUT:-.}/out-sshd-$PLAIN.log
