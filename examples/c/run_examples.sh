#!/usr/bin/env bash
# run_examples.sh BUILD_DIR — run the C examples against each other on
# 127.0.0.1 and check that each prints exactly the lines its Python original
# prints and exits as expected. Prints a transcript; exits 1 if anything is off.
#
# BUILD_DIR is the CMake build directory (the examples are in
# BUILD_DIR/examples/c) or the directory holding the example binaries.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
bin=$1/examples/c
[ -x "$bin/tcp_echo_server" ] || bin=$1
for prog in tcp_echo_server tcp_echo_client connect_existing_socket \
            tutorial_echo_server udp_echo_server udp_echo_client \
            subprocess_date tls_echo_server tls_echo_client \
            streams_tcp_echo_server streams_tcp_echo_client \
            streams_wait_for_data print_http_headers \
            tutorial_streams_echo_server tutorial_streams_echo_client; do
    if [ ! -x "$bin/$prog" ]; then
        echo "run_examples.sh: $bin/$prog not found; build first" >&2
        exit 2
    fi
done

tmp=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

checks=0
failed=0
declare -A cmdline      # NAME -> the command line shown in the transcript
preset_problem=         # a failure found before report runs

# report NAME STATUS WANT_STATUS PATTERN...
# Prints what NAME printed (from $tmp/NAME.out and .err), then checks that the
# exit status is WANT_STATUS ("nonzero": any failure, with a message on stderr)
# and that stdout is exactly the given lines, each one a shell glob pattern.
report() {
    local name=$1 status=$2 want=$3 line i=0 problem=$preset_problem
    shift 3
    preset_problem=
    local -a got=()
    mapfile -t got <"$tmp/$name.out"

    echo "\$ ${cmdline[$name]}"
    for line in "${got[@]}"; do echo "    $line"; done
    while IFS= read -r line; do echo "    (stderr) $line"; done <"$tmp/$name.err"

    if [ "$want" = nonzero ]; then
        [ "$status" -ne 0 ] || problem="exit status 0, expected a failure"
        [ -s "$tmp/$name.err" ] || problem="no error message on stderr"
    elif [ "$status" -ne "$want" ]; then
        problem="exit status $status, expected $want"
    fi
    for line in "$@"; do
        if [ -z "$problem" ] && [[ "${got[i]-<nothing>}" != $line ]]; then
            problem="line $((i + 1)) is '${got[i]-<nothing>}', expected '$line'"
        fi
        i=$((i + 1))
    done
    if [ -z "$problem" ] && [ "${#got[@]}" -gt $i ]; then
        problem="unexpected line $((i + 1)): '${got[i]}'"
    fi

    checks=$((checks + 1))
    if [ -n "$problem" ]; then
        failed=$((failed + 1))
        echo "    FAIL: $problem"
    else
        echo "    ok (exit $status)"
    fi
    echo
}

# show_command NAME PROGRAM ARGS...: record the command line for the transcript.
show_command() {
    local name=$1 arg
    cmdline[$name]=$(basename "$2")
    for arg in "${@:3}"; do
        [[ $arg == *[[:space:]\']* ]] && arg="\"$arg\""
        cmdline[$name]+=" $arg"
    done
}

# run NAME PROGRAM ARGS...: run an example in the foreground (10 s at most).
run() {
    local name=$1
    show_command "$@"
    shift
    timeout 10 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
}

# start_server NAME PROGRAM [OPTIONS...]: start it (with OPTIONS) on a free
# port in the background and wait until it announces "listening on
# HOST:PORT" on stderr; sets $port.
start_server() {
    local name=$1 prog=$2 tries=0
    show_command "$name" "$prog" "${@:3}" 127.0.0.1 0
    "$bin/$prog" "${@:3}" 127.0.0.1 0 >"$tmp/$name.out" 2>"$tmp/$name.err" &
    server_pid=$!
    port=
    while [ -z "$port" ] && [ $tries -lt 100 ]; do
        port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/$name.err")
        [ -n "$port" ] || { sleep 0.05; tries=$((tries + 1)); }
    done
    [ -n "$port" ]
}

# wait_server: wait (5 s at most) for the background server to exit; sets $status.
wait_server() {
    local tries=0
    while kill -0 "$server_pid" 2>/dev/null && [ $tries -lt 100 ]; do
        sleep 0.05
        tries=$((tries + 1))
    done
    kill -KILL "$server_pid" 2>/dev/null   # still running: status 137
    wait "$server_pid"
    status=$?
    server_pid=
}

# not_listening NAME: the server never announced its port; stop and report it.
not_listening() {
    kill -TERM "$server_pid" 2>/dev/null
    wait_server
    preset_problem="no 'listening on HOST:PORT' on stderr"
    report "$1" "$status" 0
}

echo "== TCP echo server and client"
echo
if start_server server tcp_echo_server; then
    run client1 "$bin/tcp_echo_client" 127.0.0.1 "$port"
    report client1 $? 0 \
        "Data sent: 'Hello World!'" \
        "Data received: 'Hello World!'" \
        "The server closed the connection"

    run client2 "$bin/tcp_echo_client" 127.0.0.1 "$port" "Don't panic"
    report client2 $? 0 \
        "Data sent: \"Don't panic\"" \
        "Data received: \"Don't panic\"" \
        "The server closed the connection"

    kill -TERM "$server_pid"
    wait_server
    cmdline[server]+="   (stopped with SIGTERM)"
    report server $status 0 \
        "Connection from ('127.0.0.1', [0-9]*)" \
        "Data received: 'Hello World!'" \
        "Send: 'Hello World!'" \
        "Close the client socket" \
        "Connection from ('127.0.0.1', [0-9]*)" \
        "Data received: \"Don't panic\"" \
        "Send: \"Don't panic\"" \
        "Close the client socket"

    # Nothing listens on that port any more: the client must fail.
    run refused "$bin/tcp_echo_client" 127.0.0.1 "$port"
    status=$?
    cmdline[refused]+="   (server gone: must fail)"
    report refused $status nonzero
else
    not_listening server
fi

echo "== Connecting existing sockets"
echo
run existing "$bin/connect_existing_socket"
report existing $? 0 "Received: abc"

echo "== Tutorial: SimpleEchoProtocol"
echo
if start_server tutorial tutorial_echo_server; then
    # A tiny client: send "abc", read the 8-byte answer, close.
    cmdline[tiny]="(bash /dev/tcp client) send 'abc' to 127.0.0.1:$port"
    {
        exec 3<>"/dev/tcp/127.0.0.1/$port" &&
            printf abc >&3 &&
            read -r -t 5 -N 8 reply <&3 &&
            echo "received '$reply'"
    } >"$tmp/tiny.out" 2>"$tmp/tiny.err"
    status=$?
    exec 3<&-
    report tiny $status 0 "received 'echo:abc'"

    # The tutorial's server closes itself when its connection is lost.
    wait_server
    report tutorial $status 0 \
        "Connection received!" \
        "b'abc'" \
        "Connection lost! Closing server..."
else
    not_listening tutorial
fi

echo "== UDP echo server and client"
echo
if start_server udpserver udp_echo_server; then
    run udpclient "$bin/udp_echo_client" 127.0.0.1 "$port"
    report udpclient $? 0 \
        "Send: Hello World!" \
        "Received: Hello World!" \
        "Close the socket" \
        "Connection closed"

    kill -TERM "$server_pid"
    wait_server
    cmdline[udpserver]+="   (stopped with SIGTERM)"
    report udpserver $status 0 \
        "Starting UDP server" \
        "Received 'Hello World!' from ('127.0.0.1', [0-9]*)" \
        "Send 'Hello World!' to ('127.0.0.1', [0-9]*)"
else
    not_listening udpserver
fi

echo "== Subprocess: DateProtocol"
echo
run date "$bin/subprocess_date"
report date $? 0 "Current date: [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]"

echo "== TLS echo server and client (the TCP echo example with ssl=)"
echo
# A CA and a certificate for localhost / 127.0.0.1 / ::1, made for this run.
make_certs() {
    local d=$tmp/tls
    mkdir -p "$d" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=tapio example CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/server.key" -out "$d/server.csr" -subj /CN=localhost &&
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' \
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.pem"
}
if ! command -v openssl >/dev/null; then
    echo "openssl (the command) not found: cannot make certificates"
    checks=$((checks + 1))
    failed=$((failed + 1))
elif ! make_certs >"$tmp/certs.log" 2>&1; then
    cat "$tmp/certs.log"
    echo "making the test certificates failed"
    checks=$((checks + 1))
    failed=$((failed + 1))
elif start_server tlsserver tls_echo_server --cert "$tmp/tls/server.pem" \
        --key "$tmp/tls/server.key"; then
    cmdline[tlsserver]=${cmdline[tlsserver]//$tmp/\$TMP}
    run tlsclient1 "$bin/tls_echo_client" --ca "$tmp/tls/ca.pem" 127.0.0.1 "$port"
    cmdline[tlsclient1]=${cmdline[tlsclient1]//$tmp/\$TMP}
    report tlsclient1 $? 0 \
        "Data sent: 'Hello World!'" \
        "Data received: 'Hello World!'" \
        "The server closed the connection"

    # The CA from the environment, the name checked: localhost.
    TAPIO_TLS_CA=$tmp/tls/ca.pem run tlsclient2 "$bin/tls_echo_client" \
        --server-hostname localhost 127.0.0.1 "$port" "Don't panic"
    status=$?
    cmdline[tlsclient2]="TAPIO_TLS_CA=\$TMP/tls/ca.pem ${cmdline[tlsclient2]}"
    report tlsclient2 $status 0 \
        "Data sent: \"Don't panic\"" \
        "Data received: \"Don't panic\"" \
        "The server closed the connection"

    # A name the certificate does not carry: the client must refuse it.
    run tlswrongname "$bin/tls_echo_client" --ca "$tmp/tls/ca.pem" \
        --server-hostname wrong.example 127.0.0.1 "$port"
    status=$?
    cmdline[tlswrongname]=${cmdline[tlswrongname]//$tmp/\$TMP}
    cmdline[tlswrongname]+="   (wrong name: must fail)"
    report tlswrongname $status nonzero

    # A CA it does not trust (the server's certificate as the only CA).
    run tlsuntrusted "$bin/tls_echo_client" --ca "$tmp/tls/server.pem" \
        127.0.0.1 "$port"
    status=$?
    cmdline[tlsuntrusted]=${cmdline[tlsuntrusted]//$tmp/\$TMP}
    cmdline[tlsuntrusted]+="   (untrusted: must fail)"
    report tlsuntrusted $status nonzero

    kill -TERM "$server_pid"
    wait_server
    cmdline[tlsserver]+="   (stopped with SIGTERM)"
    # The refused handshakes never reach the protocol: two connections.
    report tlsserver $status 0 \
        "Connection from ('127.0.0.1', [0-9]*)" \
        "Data received: 'Hello World!'" \
        "Send: 'Hello World!'" \
        "Close the client socket" \
        "Connection from ('127.0.0.1', [0-9]*)" \
        "Data received: \"Don't panic\"" \
        "Send: \"Don't panic\"" \
        "Close the client socket"
else
    not_listening tlsserver
fi

echo "== Streams: TCP echo server and client using streams"
echo
if start_server sserver streams_tcp_echo_server; then
    run sclient1 "$bin/streams_tcp_echo_client" 127.0.0.1 "$port"
    report sclient1 $? 0 \
        "Send: 'Hello World!'" \
        "Received: 'Hello World!'" \
        "Close the connection"

    run sclient2 "$bin/streams_tcp_echo_client" 127.0.0.1 "$port" "Don't panic"
    report sclient2 $? 0 \
        "Send: \"Don't panic\"" \
        "Received: \"Don't panic\"" \
        "Close the connection"

    kill -TERM "$server_pid"
    wait_server
    cmdline[sserver]+="   (stopped with SIGTERM)"
    report sserver $status 0 \
        "Serving on ('127.0.0.1', $port)" \
        "Received 'Hello World!' from ('127.0.0.1', [0-9]*)" \
        "Send: 'Hello World!'" \
        "Close the connection" \
        "Received \"Don't panic\" from ('127.0.0.1', [0-9]*)" \
        "Send: \"Don't panic\"" \
        "Close the connection"

    run srefused "$bin/streams_tcp_echo_client" 127.0.0.1 "$port"
    status=$?
    cmdline[srefused]+="   (server gone: must fail)"
    report srefused $status nonzero
else
    not_listening sserver
fi

echo "== Streams: register an open socket to wait for data using streams"
echo
run waitdata "$bin/streams_wait_for_data"
report waitdata $? 0 "Received: abc"

echo "== Streams: the tutorial's streams echo server and client"
echo
if start_server tserver tutorial_streams_echo_server; then
    run tclient "$bin/tutorial_streams_echo_client" 127.0.0.1 "$port"
    report tclient $? 0 \
        "Lines received" \
        "b'First line.\\\\n'" \
        "b'Second line.\\\\n'" \
        "b'Third line.\\\\n'" \
        "b'Last line.\\\\n'"

    kill -TERM "$server_pid"
    wait_server
    cmdline[tserver]+="   (stopped with SIGTERM)"
    # The four lines usually arrive as one chunk, but may come in several.
    mapfile -t got <"$tmp/tserver.out"
    chunks=$(printf '%s' "${got[*]:1}" | sed "s/^b'//; s/'$//; s/' b'//g")
    [ "$chunks" = 'First line.\nSecond line.\nThird line.\nLast line.\n' ] ||
        preset_problem="the chunks printed do not make up the four lines"
    chunk_lines=("${got[@]:1}")
    chunk_lines=("${chunk_lines[@]//\\/\\\\}") # the report's patterns are globs
    report tserver $status 0 "Connection received!" "${chunk_lines[@]}"
else
    not_listening tserver
fi

echo "== Streams: get HTTP headers (http and https, from a local server)"
echo
# A local HTTP server (Python's http.server over an empty directory), and
# the same over TLS with the certificates made for the TLS examples.
cat >"$tmp/httpd.py" <<'PY'
import http.server, ssl, sys
srv = http.server.HTTPServer(('127.0.0.1', 0),
                             http.server.SimpleHTTPRequestHandler)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"listening on 127.0.0.1:{srv.server_address[1]}", file=sys.stderr,
      flush=True)
srv.serve_forever()
PY
mkdir -p "$tmp/www"
# start_httpd NAME [CERT KEY]: like start_server, for the Python server.
start_httpd() {
    local name=$1 tries=0
    cmdline[$name]="python3 httpd.py ${2:+(TLS)}"
    (cd "$tmp/www" && exec "${PYTHON:-python3}" "$tmp/httpd.py" "${@:2}") \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    server_pid=$!
    port=
    while [ -z "$port" ] && [ $tries -lt 100 ]; do
        port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/$name.err")
        [ -n "$port" ] || { sleep 0.05; tries=$((tries + 1)); }
    done
    [ -n "$port" ]
}
http_headers=(
    "HTTP header> HTTP/1.0 200 OK"
    "HTTP header> Server: SimpleHTTP/* Python/*"
    "HTTP header> Date: *"
    "HTTP header> Content-[Tt]ype: text/html*"
    "HTTP header> Content-Length: [0-9]*")
if ! command -v "${PYTHON:-python3}" >/dev/null; then
    echo "python3 not found: no local HTTP server"
    checks=$((checks + 1))
    failed=$((failed + 1))
else
    if start_httpd httpd; then
        run http "$bin/print_http_headers" "http://127.0.0.1:$port/"
        report http $? 0 "${http_headers[@]}"
        kill -TERM "$server_pid"
        wait_server
    else
        not_listening httpd
    fi
    if [ ! -f "$tmp/tls/server.pem" ]; then
        echo "no test certificates: https not checked"
        checks=$((checks + 1))
        failed=$((failed + 1))
    elif start_httpd httpsd "$tmp/tls/server.pem" "$tmp/tls/server.key"; then
        run https "$bin/print_http_headers" --ca "$tmp/tls/ca.pem" \
            "https://localhost:$port/"
        cmdline[https]=${cmdline[https]//$tmp/\$TMP}
        report https $? 0 "${http_headers[@]}"
        kill -TERM "$server_pid"
        wait_server
    else
        not_listening httpsd
    fi
fi

if [ $failed -ne 0 ]; then
    echo "examples: $failed of $checks checks FAILED"
    exit 1
fi
echo "examples: all $checks checks passed"
