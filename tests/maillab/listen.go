package maillab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
)

// waitListening polls, without connecting (a probe connection would put
// lines into the logs under test), until every port has a listening TCP
// socket for IPv4 and for IPv6 in ns. It gives up when ctx ends or when
// exited (if not nil) is closed because the server died.
func waitListening(ctx context.Context, ns *testnet.NS, exited <-chan struct{}, ports ...uint16) error {
	for {
		var missing []string
		err := ns.Do(func() error {
			for _, table := range []string{"tcp", "tcp6"} {
				listening, err := listeningPorts("/proc/thread-self/net/" + table)
				if err != nil {
					return err
				}
				for _, p := range ports {
					if !listening[p] {
						missing = append(missing, fmt.Sprintf("%s/%d", table, p))
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not listening on %s: %w", strings.Join(missing, " "), ctx.Err())
		case <-exited:
			return fmt.Errorf("exited before listening on %s", strings.Join(missing, " "))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// listeningPorts reads a /proc/net/tcp{,6} table and returns the local
// ports of sockets in state LISTEN (0A).
func listeningPorts(path string) (map[uint16]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	ports := map[uint16]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		_, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			continue
		}
		ports[uint16(port)] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ports, nil
}
