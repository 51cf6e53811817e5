# shellcheck shell=bash
# Shared helpers for polyvirt's scripts: sourced, not run.

# The Go release the module is built with (go.mod's go line).
POLYVIRT_GO_VERSION=1.26.8

log() { printf '[polyvirt] %s\n' "$*" >&2; }
die() { printf '[polyvirt] error: %s\n' "$*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages and starts libvirtd)"
}

# apt_install PKG... installs the Debian packages that are missing.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "${POLYVIRT_APT_UPDATED:-}" ]; then
		apt-get update -qq || die "apt-get update failed"
		POLYVIRT_APT_UPDATED=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# ensure_go puts a Go toolchain of at least POLYVIRT_GO_VERSION on PATH: the
# machine's own, or the official toolchain module from the Go module proxy.
ensure_go() {
	export PATH="$PATH:/usr/local/go/bin:/usr/local/polyvirt-go/bin"
	if command -v go >/dev/null 2>&1; then
		local have
		have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
		if [ "$(printf '%s\n%s\n' "$POLYVIRT_GO_VERSION" "$have" | sort -V | head -1)" = "$POLYVIRT_GO_VERSION" ]; then
			return 0
		fi
		# A Go >= 1.21 fetches the right toolchain itself.
		export GOTOOLCHAIN="go${POLYVIRT_GO_VERSION}"
		go version >/dev/null 2>&1 && return 0
		unset GOTOOLCHAIN
	fi
	apt_install ca-certificates curl unzip
	local goarch
	case "$(uname -m)" in
	x86_64) goarch=amd64 ;; aarch64) goarch=arm64 ;; ppc64le) goarch=ppc64le ;; s390x) goarch=s390x ;;
	*) die "no Go toolchain for $(uname -m)" ;;
	esac
	local url="https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${POLYVIRT_GO_VERSION}.linux-${goarch}.zip"
	log "fetching Go ${POLYVIRT_GO_VERSION} from the Go module proxy"
	local tmp
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "$url" || die "could not download $url"
	rm -rf /usr/local/polyvirt-go
	unzip -q "$tmp/go.zip" -d "$tmp"
	mv "$tmp/golang.org/toolchain@v0.0.1-go${POLYVIRT_GO_VERSION}.linux-${goarch}" /usr/local/polyvirt-go
	chmod +x /usr/local/polyvirt-go/bin/* /usr/local/polyvirt-go/pkg/tool/*/* 2>/dev/null || true
	rm -rf "$tmp"
	export PATH="/usr/local/polyvirt-go/bin:$PATH"
	go version >/dev/null || die "the downloaded Go does not run"
}

# Debian packages for libvirt + QEMU (x86_64 and POWER guests), the ppc64el
# installer kernel used as a real POWER guest, and xmllint for schema checks.
LIBVIRT_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-ppc qemu-system-x86 qemu-utils libxml2-utils
	debian-installer-12-netboot-ppc64el)

# ensure_libvirt installs libvirt and QEMU and starts virtlogd and libvirtd
# (no systemd is assumed), then waits for the socket to answer.
ensure_libvirt() {
	apt_install "${LIBVIRT_PACKAGES[@]}"
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
	pgrep -x virtlogd >/dev/null || virtlogd -d
	if ! pgrep -x libvirtd >/dev/null; then
		log "starting libvirtd"
		libvirtd -d
	fi
	local i
	for i in $(seq 1 60); do
		virsh -c qemu:///system version >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "libvirtd does not answer on /var/run/libvirt/libvirt-sock"
}

# build_polyvirt builds ./bin/polyvirt for this machine.
build_polyvirt() {
	log "building bin/polyvirt"
	CGO_ENABLED=0 go build -o bin/polyvirt ./cmd/polyvirt || die "build failed"
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

# ensure_openapi_lint installs Redocly CLI into tools/openapi (npm ci from its
# lockfile; Node.js and npm from Debian when the machine has none): the
# OpenAPI documents' tests lint them with it.
ensure_openapi_lint() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		apt_install nodejs npm
	fi
	log "Redocly CLI (tools/openapi, npm ci)"
	(cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tools/openapi failed"
}
