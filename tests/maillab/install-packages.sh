#!/bin/sh
# Installs what the mail lab (tests/maillab) needs on Debian 12, for CI and
# developers. Run as root. The lab runs private instances of every server in
# its own network namespaces; the system services these packages bring are
# neither needed nor wanted.
set -eu

# Without this, postfix's postinst asks which mail setup to create.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Keep the packages' own services from starting: a policy-rc.d that says
# "no" is what invoke-rc.d asks (on machines without systemd as PID 1 that
# is the only thing that could start them). An existing policy is kept.
created_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi

DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=600 \
	postfix dovecot-core dovecot-imapd dovecot-pop3d openssh-server iproute2 util-linux procps

if [ -n "$created_policy" ]; then
	rm -f /usr/sbin/policy-rc.d
fi

# If a service manager did start them anyway, stop the system instances so
# nothing but the lab's private ones runs (they would not see the lab's
# namespaces, but they would hold the root namespace's ports).
for svc in postfix dovecot ssh; do
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done
