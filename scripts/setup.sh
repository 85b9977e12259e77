#!/usr/bin/env bash
# Install what poolwarden needs on a fresh Debian machine (run as root for the system part).
#   scripts/setup.sh          Python environment + Debian packages + local PostgreSQL/Redis
#   scripts/setup.sh python   only the Python environment (.venv with pinned dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"

# Debian packages used by the tests and later features:
#   postfix (routing end-to-end), knot + knot-dnsutils (loopback DNS), chromium (dashboard tests),
#   postfwd + pflogsumm + libsisimai-perl (benchmark peers), iproute2 (private network namespaces),
#   postgresql + redis-server (multi-node store and counters), python3-venv,
#   gcc + python3-dev (pip install compiles the ingest's hot modules with mypyc, setup.py).
DEBIAN_PACKAGES=(postfix knot knot-dnsutils chromium postfwd pflogsumm iproute2
                 postgresql redis-server python3-venv gcc python3-dev libsisimai-perl)

install_debian_packages() {
  local missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: Debian packages present"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

start_services() {
  # PostgreSQL on 127.0.0.1:5432 with trust auth for local tests; Redis on 127.0.0.1:6379.
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      local hba="/etc/postgresql/$version/main/pg_hba.conf"
      if ! grep -q "poolwarden-test" "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust # poolwarden-test\nlocal all all trust # poolwarden-test' "$hba"
      fi
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
}

setup_python() {
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null \
         && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        python="$candidate"; break
      fi
    done
  fi
  [ -n "$python" ] || { echo "setup: Python ≥ 3.11 not found" >&2; exit 1; }
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  # POOLWARDEN_COMPILE=1: setup.py compiles the ingest's hot modules (mypyc); the test
  # command fails if they were not (tests/wire/test_compiled.py)
  POOLWARDEN_COMPILE=1 .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "setup: Python environment ready in .venv ($(.venv/bin/python --version));" \
       "compiled: $(cd src && ls poolwarden/*/*.so 2>/dev/null | tr '\n' ' ')"
}

case "$part" in
  python) setup_python ;;
  all) install_debian_packages; start_services; setup_python ;;
  *) echo "usage: $0 [all|python]" >&2; exit 2 ;;
esac
