#!/bin/sh
# Starts the stand-alone daemon on a free port, runs a test program against
# it, stops the daemon and fails if either failed (sanitizer reports too).
set -u
daemon=$1
test=$2
for attempt in 1 2 3 4 5; do
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000 ))
    [ -e "/tmp/$port" ] && continue
    log=$(mktemp)
    "$daemon" --port "$port" --log-level error > "$log.out" 2> "$log" &
    pid=$!
    i=0
    while [ $i -lt 100 ] && ! grep -q ready "$log.out" 2>/dev/null; do
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
        i=$((i + 1))
    done
    if grep -q ready "$log.out"; then
        "$test" "$port"
        status=$?
        kill -TERM $pid
        wait $pid
        dstatus=$?
        cat "$log" >&2
        rm -f "$log" "$log.out"
        [ $status -eq 0 ] && [ $dstatus -eq 0 ] && exit 0
        echo "test status $status, daemon status $dstatus" >&2
        exit 1
    fi
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null
    rm -f "$log" "$log.out"
done
echo "could not start the daemon" >&2
exit 1
