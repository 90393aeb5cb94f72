# portcullis — see README.md.
GO ?= go
BIN ?= bin/portcullis
BENCHTIME ?= 1x

.PHONY: all build generate check-generated test bench vet clean

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
