# Shared helpers for lab scenarios (sourced). Results are lines the lab runner parses:
#   OVERCAST-CHECK PASS <name>
#   OVERCAST-CHECK FAIL <name> <reason>
OVC_FAILS=0
pass() { echo "OVERCAST-CHECK PASS $1"; }
fail() { local n=$1; shift; echo "OVERCAST-CHECK FAIL $n $*"; OVC_FAILS=$((OVC_FAILS + 1)); }
# check NAME CMD...: PASS if CMD succeeds.
check() { local n=$1; shift; if "$@" >/tmp/check.out 2>&1; then pass "$n"; else fail "$n" "'$*' failed: $(tail -c 200 /tmp/check.out | tr '\n' ' ')"; fi; }
# check_fails NAME ERRTEXT CMD...: PASS if CMD fails and its stderr mentions ERRTEXT (e.g. an errno's text).
check_fails() {
  local n=$1 want=$2; shift 2
  if "$@" >/tmp/check.out 2>&1; then fail "$n" "'$*' succeeded but must fail"; return; fi
  if grep -qi -- "$want" /tmp/check.out; then pass "$n"; else fail "$n" "'$*' failed without '$want': $(tail -c 200 /tmp/check.out | tr '\n' ' ')"; fi
}
# Print the KTAP of every loaded KUnit suite whose name starts with $1 (from debugfs, without printk prefixes).
print_ktap() {
  local d
  for d in /sys/kernel/debug/kunit/$1*; do
    [ -f "$d/results" ] && cat "$d/results"
  done
}
# An oops, BUG or WARN anywhere in the kernel log fails the scenario.
check_no_oops() {
  if dmesg | grep -E -q 'Oops|BUG:|WARNING:|Call Trace|general protection|kernel BUG'; then
    fail no-oops "$(dmesg | grep -E -m3 'Oops|BUG:|WARNING:|general protection|kernel BUG' | tr '\n' ' ')"
  else
    pass no-oops
  fi
}
