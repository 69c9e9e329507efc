# The checks the command tests count, sourced by them: each prints "ok   <what>" or
# "FAIL <what>" with the command's output, and counts failures in $fails.
fails=0
check() {  # description, command...
  local what=$1; shift
  if "$@" > out.log 2>&1; then echo "ok   $what"; else echo "FAIL $what"; sed 's/^/     /' out.log; fails=$((fails + 1)); fi
}
fails_with() {  # description, expected message, command...
  local what=$1 msg=$2; shift 2
  if "$@" > out.log 2>&1; then echo "FAIL $what: succeeded"; fails=$((fails + 1));
  elif grep -qF -- "$msg" out.log; then echo "ok   $what"; else echo "FAIL $what: no '$msg' in"; sed 's/^/     /' out.log; fails=$((fails + 1)); fi
}
