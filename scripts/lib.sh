# shellcheck shell=bash
# Shared helpers for polyvirt's scripts: sourced, not run.

# The Go release the module is built with (go.mod's go line).
POLYVIRT_GO_VERSION=1.26.8

# POLYVIRT_T0 is when the first script of this run started (for the times
# in the log lines).
POLYVIRT_T0=${POLYVIRT_T0:-$(date +%s)}
export POLYVIRT_T0

# log says what the script does, with the time since it started ([m:ss]).
log() {
	local t=$(($(date +%s) - POLYVIRT_T0))
	printf '[polyvirt %d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*" >&2
}
die() { printf '[polyvirt] error: %s\n' "$*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages and starts libvirtd)"
}

# apt_install PKG... installs the Debian packages that are missing, showing
# apt's own progress.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${#missing[@]} Debian packages (about a minute on a fresh machine): ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "${POLYVIRT_APT_UPDATED:-}" ]; then
		apt-get update -q || die "apt-get update failed"
		POLYVIRT_APT_UPDATED=1
	fi
	apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
	log "installed ${missing[*]}"
}

# version_at_least MIN HAVE tells whether the version HAVE (1.26.8, 10.0.2)
# is MIN or later; an empty HAVE is not.
version_at_least() {
	[ -n "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]
}

# go_recent GO tells whether the go command GO is at least
# POLYVIRT_GO_VERSION (as it is, without fetching another toolchain).
go_recent() {
	[ -x "$1" ] || return 1
	local have
	have=$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null | sed 's/^go//')
	version_at_least "$POLYVIRT_GO_VERSION" "$have"
}

# POLYVIRT_GO_DIR is where ensure_go puts the toolchain it fetches.
POLYVIRT_GO_DIR=${POLYVIRT_GO_DIR:-/usr/local/polyvirt-go}

# ensure_go puts a Go toolchain of at least POLYVIRT_GO_VERSION first on
# PATH: the machine's own when it is recent enough; else Go's official
# toolchain, fetched as the Go module golang.org/toolchain by a go command
# (Debian's golang-go when there is none) through the module proxy that go
# command is configured with (GOPROXY, GOSUMDB, GOFLAGS: go help
# environment), into POLYVIRT_GO_DIR.
ensure_go() {
	local g
	for g in "$(command -v go 2>/dev/null)" /usr/local/go/bin/go "$POLYVIRT_GO_DIR/bin/go"; do
		if [ -n "$g" ] && go_recent "$g"; then
			export PATH="$(dirname "$g"):$PATH"
			export GOTOOLCHAIN=local
			return 0
		fi
	done
	if ! command -v go >/dev/null 2>&1; then
		log "no Go on this machine: Debian's golang-go first, to fetch Go ${POLYVIRT_GO_VERSION} with"
		apt_install golang-go
	fi
	local goarch mod tmp dir
	goarch=$(GOTOOLCHAIN=local go env GOHOSTARCH) || die "go env does not work"
	mod="golang.org/toolchain@v0.0.1-go${POLYVIRT_GO_VERSION}.linux-${goarch}"
	log "fetching Go ${POLYVIRT_GO_VERSION} (module ${mod}, about 75 MB: a minute or two) with $(GOTOOLCHAIN=local go env GOVERSION) through its module proxy"
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-modcacherw GOPATH="$tmp/gopath" \
		go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') ||
		die "go mod download ${mod} failed (is the Go module proxy reachable? go env GOPROXY)"
	{ [ -n "$dir" ] && [ -f "$dir/bin/go" ]; } || die "go mod download ${mod} gave no toolchain"
	rm -rf "$POLYVIRT_GO_DIR"
	cp -r "$dir" "$POLYVIRT_GO_DIR"
	chmod -R u+w "$POLYVIRT_GO_DIR"
	chmod +x "$POLYVIRT_GO_DIR"/bin/* "$POLYVIRT_GO_DIR"/pkg/tool/*/*
	rm -rf "$tmp"
	go_recent "$POLYVIRT_GO_DIR/bin/go" || die "the Go fetched into $POLYVIRT_GO_DIR does not run"
	export PATH="$POLYVIRT_GO_DIR/bin:$PATH"
	export GOTOOLCHAIN=local
	log "Go ${POLYVIRT_GO_VERSION} is in $POLYVIRT_GO_DIR"
}

# Debian packages for libvirt, the ppc64el and amd64 installer kernels used
# as real guests, and xmllint for schema checks. QEMU comes apart
# (ensure_qemu).
LIBVIRT_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils
	debian-installer-12-netboot-ppc64el debian-installer-12-netboot-amd64)

# QEMU for x86_64 and POWER guests, SPICE and QXL among its modules.
QEMU_PACKAGES=(qemu-system-ppc qemu-system-x86 qemu-utils qemu-system-modules-spice)

# POLYVIRT_QEMU_MIN is the oldest QEMU the lab and the tests run their
# guests on. Their guests run under TCG (software emulation), and Debian
# 12's QEMU 7.2 now and then corrupts the memory of a guest migrated live
# under TCG — x86_64 and POWER guests alike, their kernels oopsing on
# arrival (QEMU 9.0's "physmem: Fix migration dirty bitmap coherency with
# TCG memory access") — and does not migrate an emulated POWER guest's
# decrementer (8.2's "target/ppc: Migrate DECR SPR"): docs/operations.md.
POLYVIRT_QEMU_MIN=9.0

# qemu_version prints the version of this machine's qemu-system-x86_64
# (10.0.2), nothing when there is none.
qemu_version() {
	qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9.]*\).*/\1/p'
}

# ensure_qemu installs QEMU_PACKAGES, at POLYVIRT_QEMU_MIN at least: on
# Debian 12 from Debian's bookworm-backports (QEMU 10.0), a suite added to
# apt's sources from the mirror the machine's bookworm suite comes from
# (apt-get indextargets) — nothing else is taken from it. This machine's
# libvirtd, when it runs, is stopped after QEMU changed.
ensure_qemu() {
	local have codename backports uri list=/etc/apt/sources.list.d/polyvirt-backports.list
	have=$(qemu_version)
	if version_at_least "$POLYVIRT_QEMU_MIN" "$have"; then
		apt_install "${QEMU_PACKAGES[@]}"
		return 0
	fi
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "cannot read this machine's Debian release from /etc/os-release"
	backports=$codename-backports
	if ! apt-get indextargets --format '$(RELEASE)' 'Identifier: Packages' | grep -qx "$backports"; then
		uri=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' | awk -v s="$codename" '$1 == s { print $2; exit }')
		[ -n "$uri" ] || die "apt has no $codename suite to take $backports's mirror from (apt-get indextargets)"
		log "adding $backports (from $uri) to apt's sources for QEMU $POLYVIRT_QEMU_MIN or later: $list"
		printf '# written by polyvirt scripts/lib.sh: QEMU for the lab and the tests\ndeb %s %s main\n' "$uri" "$backports" >"$list"
	fi
	log "installing QEMU from $backports (this machine has ${have:-none}; the lab needs $POLYVIRT_QEMU_MIN or later)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || die "apt-get update failed"
	POLYVIRT_APT_UPDATED=1
	apt-get install -y -q --no-install-recommends -t "$backports" "${QEMU_PACKAGES[@]}" || die "apt-get install -t $backports ${QEMU_PACKAGES[*]} failed"
	have=$(qemu_version)
	version_at_least "$POLYVIRT_QEMU_MIN" "$have" ||
		die "QEMU is ${have:-missing} after the install from $backports; the lab needs $POLYVIRT_QEMU_MIN or later"
	log "installed QEMU $have"
	# This machine's libvirtd (by its pid file: the lab's own daemons run
	# under the same name) probed the old QEMU: its supervisor, or
	# ensure_libvirt, starts it again.
	local pid
	pid=$(cat /run/libvirtd.pid 2>/dev/null)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		log "stopped libvirtd (QEMU changed under it)"
		sleep 1
	fi
}

# ensure_guest_kernels unpacks, under /var/cache/polyvirt/guest-kernels/ARCH,
# the Debian kernel packages of the installer kernels' ABI
# (linux-image-6.1.0-N-amd64 and -powerpc64le): the storage tests' guests
# boot those kernels and load their CD-ROM, ISO 9660 and virtio-blk drivers
# from there (the installer's own initrd does not carry them). The ppc64el
# package comes through apt with a package list of its own for that
# architecture, under /var/cache/polyvirt/apt-ppc64el: the machine's apt
# configuration is left as it is.
ensure_guest_kernels() {
	local base=/var/cache/polyvirt/guest-kernels di=/usr/lib/debian-installer/images/12
	local apt_ppc=(-o Dir::State::Lists=/var/cache/polyvirt/apt-ppc64el/lists -o Dir::Cache=/var/cache/polyvirt/apt-ppc64el
		-o Dir::State::status=/dev/null -o APT::Architecture=ppc64el -o APT::Architectures::=ppc64el)
	local spec arch flavour kernel abi tmp
	for spec in amd64:amd64:amd64/text/debian-installer/amd64/linux ppc64el:powerpc64le:ppc64el/text/debian-installer/ppc64el/vmlinux; do
		IFS=: read -r arch flavour kernel <<<"$spec"
		abi=$(grep -a -o -m1 "[0-9]\.[0-9]*\.[0-9]*-[0-9]*-$flavour" "$di/$kernel" | head -1)
		[ -n "$abi" ] || die "cannot read the kernel version of $di/$kernel"
		[ -d "$base/$arch/lib/modules/$abi" ] && continue
		log "fetching the $arch kernel modules of the installer kernel ($abi: linux-image-$abi)"
		tmp=$(mktemp -d)
		if [ "$arch" = ppc64el ]; then
			mkdir -p /var/cache/polyvirt/apt-ppc64el/lists/partial /var/cache/polyvirt/apt-ppc64el/archives/partial
			apt_download "$tmp" "linux-image-$abi" "${apt_ppc[@]}" || die "cannot download linux-image-$abi for ppc64el"
		else
			apt_download "$tmp" "linux-image-$abi" || die "cannot download linux-image-$abi"
		fi
		rm -rf "${base:?}/$arch"
		mkdir -p "$base/$arch"
		dpkg-deb -x "$tmp"/linux-image-*.deb "$base/$arch" || die "cannot unpack linux-image-$abi"
		rm -rf "$tmp"
	done
}

# apt_download DIR PACKAGE [APT OPTION...] downloads a package's .deb into
# DIR. When the package lists lack it, it updates them and tries again; an
# update that fails for one index (a mirror in the middle of a sync says
# "File has unexpected size") still refreshes the others, so the download
# is tried after it whatever it returned, three times 20 s apart.
apt_download() {
	local dir=$1 pkg=$2 try
	shift 2
	(cd "$dir" && apt-get -qq "$@" download "$pkg" 2>/dev/null) && return 0
	for try in 1 2 3; do
		apt-get -qq "$@" update >/dev/null || log "apt-get update failed (try $try of 3); trying the download with the lists it has"
		(cd "$dir" && apt-get -qq "$@" download "$pkg" 2>/dev/null) && return 0
		[ "$try" = 3 ] || sleep 20
	done
	return 1
}

# LIBVIRTD_SUPERVISOR is the pid file of the loop that keeps this machine's
# libvirtd running (supervise_libvirtd); its log is LIBVIRTD_SUPERVISOR_LOG.
LIBVIRTD_SUPERVISOR=/run/polyvirt-libvirtd-supervisor.pid
LIBVIRTD_SUPERVISOR_LOG=/var/log/libvirt/polyvirt-supervisor.log

# supervise_libvirtd runs this machine's libvirtd under a loop of its own that
# starts it again one second after it ends, as systemd does with Debian's
# libvirtd.service (Restart=on-failure) on a host: Debian 12's libvirtd 9.0
# crashes now and then (two threads run a client's close at once when the
# client goes while the daemon still works on a call of it), and the
# machine's guests, the lab and the tests need it back — its guests keep
# running meanwhile. A libvirtd running without the loop (started by hand,
# or before) is stopped first; a running loop is left alone.
supervise_libvirtd() {
	local pid i
	pid=$(cat "$LIBVIRTD_SUPERVISOR" 2>/dev/null)
	if [ -n "$pid" ] && grep -qa polyvirt-libvirtd-supervisor "/proc/$pid/cmdline" 2>/dev/null; then
		return 0
	fi
	pid=$(cat /run/libvirtd.pid 2>/dev/null)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		log "stopping libvirtd $pid (not supervised) to start it supervised"
		for i in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
	fi
	log "starting libvirtd, supervised: started again when it ends (each restart is logged in $LIBVIRTD_SUPERVISOR_LOG)"
	# Its log goes where libvirtd -d writes it (warnings and errors).
	setsid bash -c '
		echo $$ >"$1"
		while :; do
			LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/libvirtd.log" libvirtd
			rc=$?
			echo "$(date -u "+%F %T") libvirtd ended (status $rc); starting it again in 1 s" >>"$2"
			sleep 1
		done' polyvirt-libvirtd-supervisor "$LIBVIRTD_SUPERVISOR" "$LIBVIRTD_SUPERVISOR_LOG" </dev/null >>"$LIBVIRTD_SUPERVISOR_LOG" 2>&1 &
}

# ensure_libvirt installs libvirt and QEMU (ensure_qemu) and starts virtlogd and libvirtd
# (no systemd is assumed: libvirtd under supervise_libvirtd), then waits for
# the socket to answer.
ensure_libvirt() {
	apt_install "${LIBVIRT_PACKAGES[@]}"
	ensure_qemu
	# The packages' post-install scripts expect users a minimal image lacks.
	getent group kvm >/dev/null || groupadd -r kvm
	getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
	id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm libvirt-qemu
	mkdir -p /var/log/libvirt /var/lib/libvirt /run/libvirt /etc/libvirt
	# QEMU runs as root: with the default user, a /dev/kvm that root can open
	# but the qemu user cannot makes libvirt re-probe every QEMU binary on
	# every call (seconds per `virsh capabilities`).
	local conf=/etc/libvirt/qemu.conf
	if ! grep -q '^user = "root"' "$conf" 2>/dev/null; then
		log "configuring $conf: QEMU runs as root"
		printf '# written by polyvirt scripts/lib.sh\nuser = "root"\ngroup = "root"\n' >"$conf"
		pkill -x libvirtd 2>/dev/null && sleep 1
	fi
	# The machine's daemons are judged by their sockets, not by process
	# names: libvirt daemons of polyvirt's own (power8-b's, the tests')
	# run in mount namespaces of their own under the same names.
	[ -S /run/libvirt/virtlogd-sock ] && pgrep -x virtlogd >/dev/null || virtlogd -d || true
	supervise_libvirtd
	local i
	for i in $(seq 1 60); do
		if virsh -c qemu:///system version >/dev/null 2>&1; then
			log "libvirtd answers at qemu:///system"
			return 0
		fi
		sleep 0.5
	done
	die "libvirtd does not answer on /var/run/libvirt/libvirt-sock"
}

# build_polyvirt builds ./bin/polyvirt for this machine, counting the
# packages compiled (go's own messages, downloads and errors, as they come).
build_polyvirt() {
	local -
	set -o pipefail
	log "building bin/polyvirt (the first build fetches the Go modules and compiles about 300 packages: about 3 minutes on 2 cores; later builds take seconds)"
	CGO_ENABLED=0 go build -v -o bin/polyvirt ./cmd/polyvirt 2>&1 | {
		local n=0 line
		while IFS= read -r line; do
			case "$line" in
			*' '* | *:*) printf '%s\n' "$line" >&2 ;;
			*)
				n=$((n + 1))
				[ $((n % 50)) -ne 0 ] || log "  ${n} packages compiled"
				;;
			esac
		done
	} || die "the build failed"
	log "built bin/polyvirt"
}

# ensure_postgres installs Debian's PostgreSQL 15, starts its "main" cluster
# without systemd, creates the role and database "polyvirt" (password
# authentication on 127.0.0.1) and exports POLYVIRT_TEST_POSTGRES, the DSN the
# store tests use. The password is generated once and kept, readable by root
# only, in /var/lib/postgresql/polyvirt-test.password.
ensure_postgres() {
	apt_install postgresql
	local ver=15 cluster=main port=5432
	if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$ver $cluster"; then
		log "creating PostgreSQL cluster $ver/$cluster"
		pg_createcluster "$ver" "$cluster" >/dev/null || die "pg_createcluster $ver $cluster failed"
	fi
	if ! pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
		log "starting PostgreSQL $ver/$cluster"
		pg_ctlcluster "$ver" "$cluster" start || die "pg_ctlcluster $ver $cluster start failed (see /var/log/postgresql/postgresql-$ver-$cluster.log)"
	fi
	local i
	for i in $(seq 1 60); do
		runuser -u postgres -- psql -p "$port" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
		[ "$i" = 60 ] && die "PostgreSQL $ver/$cluster does not answer on port $port"
		sleep 0.5
	done
	local pwfile=/var/lib/postgresql/polyvirt-test.password
	if [ ! -s "$pwfile" ]; then
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pwfile") || die "cannot write $pwfile"
		chown root:root "$pwfile"
	fi
	local pw
	pw=$(cat "$pwfile")
	runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAt -v pw="$pw" >/dev/null <<'SQL' || die "cannot create the PostgreSQL role and database polyvirt"
SELECT format('CREATE ROLE polyvirt LOGIN PASSWORD %L', :'pw') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'polyvirt') \gexec
SELECT format('ALTER ROLE polyvirt LOGIN PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE polyvirt OWNER polyvirt' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'polyvirt') \gexec
SQL
	export POLYVIRT_TEST_POSTGRES="postgres://polyvirt:${pw}@127.0.0.1:${port}/polyvirt?sslmode=disable"
	PGPASSWORD="$pw" psql "$POLYVIRT_TEST_POSTGRES" -qAtc 'SELECT 1' >/dev/null 2>&1 ||
		die "PostgreSQL does not accept the polyvirt role on 127.0.0.1:$port"
}

# ensure_node puts node and npm on PATH (Debian's nodejs and npm, unless the
# machine has both already): the web UI's front-end packages and the OpenAPI
# linter come from npm, each from its lockfile.
ensure_node() {
	if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
		return 0
	fi
	apt_install nodejs npm
}

# ensure_openapi_lint installs Redocly CLI into tools/openapi (npm ci from its
# lockfile; Node.js and npm from Debian when the machine has none): the
# OpenAPI documents' tests lint them with it.
ensure_openapi_lint() {
	ensure_node
	log "Redocly CLI (tools/openapi, npm ci)"
	(cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tools/openapi failed"
}

# ensure_prometheus installs Debian's Prometheus server: the metrics tests run
# one of their own (their own configuration, data directory and port) that
# scrapes an engine and its agents. The package's own service is not needed.
ensure_prometheus() {
	apt_install prometheus
	command -v prometheus >/dev/null 2>&1 || die "prometheus is not on PATH after installing Debian's prometheus"
}

# BROWSER_PACKAGES are what the web UI's tests in a real browser need:
# Debian's Chromium and a font (test/browser drives /usr/bin/chromium; nothing
# downloads a browser), and Debian's amd64 installer, the x86_64 guest whose
# screen and menu the graphical console test reads (as the ppc64el one on POWER).
BROWSER_PACKAGES=(chromium fonts-dejavu-core debian-installer-12-netboot-amd64)

# ensure_browser installs Chromium for the browser tests.
ensure_browser() {
	apt_install "${BROWSER_PACKAGES[@]}"
}
