# portcullis — see README.md.
GO ?= go
BIN ?= bin/portcullis
BENCHTIME ?= 1x

.PHONY: all build generate check-generated test bench bench-data vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/portcullis

# Rebuild the XDP object and its Go bindings from bpf/portcullis.c
# (needs Debian's clang, llvm and libbpf-dev).
generate:
	$(GO) generate ./bpf

# CI: the committed objects and bindings must be what the source compiles to.
check-generated: generate
	@git diff --exit-code --stat -- bpf/ || { echo "bpf/: committed objects differ from the source; run 'make generate' and commit"; exit 1; }

vet:
	$(GO) vet ./...

# As root: the kernel tests load XDP programs and create network namespaces.
test:
	$(GO) test -count=1 ./...

# Benchmarks, not timed tests: numbers go to docs/PERFORMANCE.md.
bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

clean:
	rm -rf bin

# A full real country database for the geo benchmarks (CC0, from the npm
# registry), unpacked into bench-data/, which git ignores. CI does not fetch
# it: the benchmarks that need it skip without it.
GEO_BENCH_PKG ?= @ip-location-db/geo-whois-asn-country-mmdb
bench-data:
	mkdir -p bench-data/pack
	cd bench-data/pack && npm pack --silent $(GEO_BENCH_PKG) > ../pack.name
	tar -xzf bench-data/pack/$$(cat bench-data/pack.name) -C bench-data/pack
	cp bench-data/pack/package/*.mmdb bench-data/
	rm -rf bench-data/pack bench-data/pack.name
	@ls -l bench-data/*.mmdb

# Install the binary, the systemd unit and (only when there is none) the
# default config. DESTDIR stages the tree for a package; PREFIX says where the
# binary lives on the target, and the unit's ExecStart follows it. Packages
# put the unit in /lib/systemd/system (UNITDIR=/lib/systemd/system); a local
# install goes to /etc/systemd/system, where admin units belong. The config
# path is /etc/portcullis/portcullis.toml whatever the prefix: it is where
# the binary looks. An admin's config is never overwritten (they compare
# theirs with `portcullis config default`), and directories that exist keep
# their modes. The config is 0600: later sections hold alert credentials.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= /etc/systemd/system
CONFDIR = /etc/portcullis

.PHONY: install
install: build
	mkdir -p -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	@# A new file renamed into place: the running daemon keeps its own.
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/portcullis.tmp
	mv -f $(DESTDIR)$(SBINDIR)/portcullis.tmp $(DESTDIR)$(SBINDIR)/portcullis
	sed 's|^ExecStart=/usr/local/sbin/portcullis |ExecStart=$(SBINDIR)/portcullis |' contrib/systemd/portcullis.service \
		> $(DESTDIR)$(UNITDIR)/portcullis.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/portcullis.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/portcullis.service.tmp $(DESTDIR)$(UNITDIR)/portcullis.service
	@for u in portcullis-health.service portcullis-health.timer portcullis-health-failed.service; do \
		sed 's|^ExecStart=/usr/local/sbin/portcullis |ExecStart=$(SBINDIR)/portcullis |' contrib/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	@if [ -e $(DESTDIR)$(CONFDIR)/portcullis.toml ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/portcullis.toml (compare with: portcullis config default)"; \
	else \
		$(BIN) config default > $(DESTDIR)$(CONFDIR)/portcullis.toml.tmp && \
		chmod 0600 $(DESTDIR)$(CONFDIR)/portcullis.toml.tmp && \
		mv $(DESTDIR)$(CONFDIR)/portcullis.toml.tmp $(DESTDIR)$(CONFDIR)/portcullis.toml && \
		echo "wrote $(DESTDIR)$(CONFDIR)/portcullis.toml"; \
	fi
	@echo "then: systemctl daemon-reload && systemctl enable --now portcullis portcullis-health.timer"
