# Shared by tools/run-tests and tools/demo: a private PostgreSQL cluster on loopback, and the
# Odoo configuration for it. Source it, then `pg_start DIR PORT` (exports PGHOST/PGPORT; role
# odoo/odoo) and `odoo_rc FILE PORT DB DIR`.
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.

pg_bindir() {
    # explicit "return 0": a bare return in an EXIT trap returns the script's exit status
    local dir
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
    done
    return 1
}

pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {  # DIR PORT
    local dir=$1 port=$2 bin
    bin=$(pg_bindir) || { echo "PostgreSQL server binaries (initdb) not found" >&2; return 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log"
    fi
    if ! pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
            "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off" \
            start >/dev/null
    fi
    pg_as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qtA -c \
        "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='odoo') THEN
         CREATE ROLE odoo LOGIN CREATEDB PASSWORD 'odoo'; END IF; END\$\$;" >/dev/null
    export PGHOST=127.0.0.1 PGPORT=$port
}

pg_stop() {  # DIR
    local bin
    bin=$(pg_bindir) || return 0
    pg_as_owner "$bin/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

odoo_addons_path() {  # Odoo's own addons directories (and pip-installed addons such as
    # OCA queue_job, in site-packages/odoo/addons), then this repository
    python3 - "$1" <<'PY'
import glob, os, sys
import odoo.addons
paths = [p for p in odoo.addons.__path__ if glob.glob(os.path.join(p, "*", "__manifest__.py"))]
print(",".join(paths + [sys.argv[1]]))
PY
}

odoo_rc() {  # FILE PG_PORT DB DIR [extra "key = value" lines...]: an Odoo config for that cluster
    local file=$1 port=$2 db=$3 dir=$4 repo
    shift 4
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    {
        echo "[options]"
        echo "db_host = 127.0.0.1"
        echo "db_port = $port"
        echo "db_user = odoo"
        echo "db_password = odoo"
        echo "db_name = $db"
        echo "dbfilter = ^$db\$"
        echo "addons_path = $(odoo_addons_path "$repo")"
        echo "data_dir = $dir/data"
        echo "http_interface = 127.0.0.1"
        printf '%s\n' "$@"
    } >"$file"
}
