#!/usr/bin/env bash
# End-to-end tests of llamac serve with curl and jq: greedy answers equal the
# command line's, streams equal whole answers, concurrent streams are not
# mixed by batching, hostile requests get their status and error object and
# the server keeps serving, and SIGTERM exits 0. Usage: tests/server_test.sh BUILD_DIR
set -u
BUILD=${1:-build}
LLAMAC="$(cd "$BUILD" && pwd)/llamac"
SHARED=${LLAMAC_SHARED:-../shared}
M="$SHARED/models"
MODEL=(-m "$M/tiny-gutenberg-15M.bin" -z "$M/tokenizer.bin")
KEY=test-key-123
TMP=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
skip() { skipped=$((skipped + 1)); echo "skip $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; shift; for line in "$@"; do echo "     $line"; done; }
summary() { echo "server: $passed passed, $failed failed, $skipped skipped"; exit $((failed > 0)); }

for tool in curl jq; do
    command -v $tool >/dev/null || { fail "server tests need $tool (apt-get install $tool)"; summary; }
done

# listening_port LOG PID ADDRESS_REGEX: the port a server started with --port 0
# prints in LOG (the kernel picks a free one), or nothing if PID ends first.
listening_port() {
    local port
    for _ in $(seq 100); do
        port=$(sed -nE "s/.*listening on http:\/\/$3:([0-9]+).*/\1/p" "$1")
        [ -n "$port" ] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "$port"
}

: >"$TMP/server.log"
"$LLAMAC" serve "${MODEL[@]}" --port 0 --parallel 4 --api-key "$KEY" --max-body 64 2>"$TMP/server.log" &
SERVER_PID=$!
PORT=$(listening_port "$TMP/server.log" "$SERVER_PID" '127\.0\.0\.1')
if [ -z "$PORT" ]; then fail "server starts" "$(cat "$TMP/server.log")"; summary; fi
URL="http://127.0.0.1:$PORT"
AUTH=(-H "Authorization: Bearer $KEY")

# post PATH JSON OUT: POSTs with the key, writes the body to OUT, prints the status.
post() { curl -s -o "$3" -w '%{http_code}' "${AUTH[@]}" -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
# stream PATH JSON OUT: the concatenated text of a streamed answer to OUT, the raw events to OUT.sse.
stream() {
    curl -sN "${AUTH[@]}" -d "$2" "$URL$1" >"$3.sse"
    grep '^data: {' "$3.sse" | sed 's/^data: //' |
        jq -j '.choices[0] | (.delta.content // .text // "")' >"$3"
}
# expect_status NAME WANT_STATUS WANT_CODE METHOD PATH [curl args...]: status and error object.
expect_status() {
    local name=$1 want=$2 code=$3 method=$4 path=$5; shift 5
    local got
    got=$(curl -s -o "$TMP/err.json" -w '%{http_code}' -X "$method" "$@" "$URL$path")
    if [ "$got" != "$want" ]; then fail "$name" "status $got, expected $want" "$(head -c 300 "$TMP/err.json")"; return; fi
    if ! jq -e --arg c "$code" '.error.message and .error.type and (.error | has("param")) and (.error.code == $c)' \
        "$TMP/err.json" >/dev/null 2>&1; then
        fail "$name" "not an OpenAI error object with code $code:" "$(head -c 300 "$TMP/err.json")"; return
    fi
    pass "$name"
}

if [ "$(curl -s "$URL/health" | jq -r '"\(.status) \(.slots_free)/\(.slots_total)"')" = "ok 4/4" ]; then
    pass "GET /health: 4 free slots, no key needed"
else fail "GET /health: 4 free slots, no key needed" "$(curl -s "$URL/health")"; fi
if [ "$(curl -s "${AUTH[@]}" "$URL/v1/models" | jq -r '.data[0].id')" = "tiny-gutenberg-15M.bin" ]; then
    pass "GET /v1/models names the model"
else fail "GET /v1/models names the model"; fi

# --- the chat page: served without a key, the same bytes as the source file
ctype=$(curl -s -o "$TMP/page.html" -w '%{http_code} %{content_type}' "$URL/")
if [ "$ctype" = "200 text/html; charset=utf-8" ] && cmp -s "$TMP/page.html" "$(dirname "$0")/../src/server/chat_page.html"; then
    pass "GET /: the chat page, text/html, no key needed"
else fail "GET /: the chat page, text/html, no key needed" "$ctype"; fi
if [ "$(curl -s -I -o /dev/null -w '%{http_code}' "$URL/")" = 405 ]; then pass "HEAD /: 405"
else fail "HEAD /: 405"; fi
expect_status "POST /: 405" 405 method_not_allowed POST / -d x

# --- greedy answers equal the command line's
MSG="Hello there."
"$LLAMAC" chat "${MODEL[@]}" -t 0 -n 40 -p "$MSG" </dev/null 2>/dev/null | head -c -1 >"$TMP/cli_chat"
status=$(post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$MSG\"}],\"temperature\":0,\"max_tokens\":40}" "$TMP/chat.json")
jq -j '.choices[0].message.content' "$TMP/chat.json" >"$TMP/chat" 2>/dev/null
if [ "$status" = 200 ] && [ -s "$TMP/chat" ] && cmp -s "$TMP/chat" "$TMP/cli_chat"; then
    pass "chat completion at temperature 0 equals llamac chat -t 0"
else fail "chat completion at temperature 0 equals llamac chat -t 0" "status $status" "$(head -c 300 "$TMP/chat.json")" "cli: $(head -c 200 "$TMP/cli_chat")"; fi
if [ "$(jq -r '"\(.object) \(.choices[0].finish_reason) \(.usage.completion_tokens) \(.usage.total_tokens - .usage.prompt_tokens)"' "$TMP/chat.json")" = "chat.completion length 40 40" ]; then
    pass "chat completion: finish_reason length and usage counts"
else fail "chat completion: finish_reason length and usage counts" "$(head -c 400 "$TMP/chat.json")"; fi

PROMPT="The king"
"$LLAMAC" generate -q "${MODEL[@]}" -t 0 -n 40 -p "$PROMPT" | head -c -1 >"$TMP/cli_gen"
status=$(post /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":40}" "$TMP/gen.json")
{ printf '%s' "$PROMPT"; jq -j '.choices[0].text' "$TMP/gen.json"; } >"$TMP/gen" 2>/dev/null
if [ "$status" = 200 ] && cmp -s "$TMP/gen" "$TMP/cli_gen"; then
    pass "completion at temperature 0 equals llamac generate -t 0"
else fail "completion at temperature 0 equals llamac generate -t 0" "status $status" "$(head -c 300 "$TMP/gen.json")"; fi

# --- streams: the deltas add up to the whole answer
stream /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$MSG\"}],\"temperature\":0,\"max_tokens\":40,\"stream\":true}" "$TMP/chat_stream"
if cmp -s "$TMP/chat_stream" "$TMP/chat" && [ "$(tail -n 2 "$TMP/chat_stream.sse" | head -n 1)" = "data: [DONE]" ] &&
    grep '^data: {' "$TMP/chat_stream.sse" | tail -n 1 | sed 's/^data: //' | jq -e '.choices[0].finish_reason == "length"' >/dev/null; then
    pass "streamed chat: deltas equal the whole answer, finish_reason, then [DONE]"
else fail "streamed chat: deltas equal the whole answer, finish_reason, then [DONE]" "$(head -c 300 "$TMP/chat_stream")"; fi
stream /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":40,\"stream\":true}" "$TMP/gen_stream"
if cmp -s <(printf '%s' "$PROMPT"; cat "$TMP/gen_stream") "$TMP/cli_gen"; then
    pass "streamed completion equals the whole answer"
else fail "streamed completion equals the whole answer" "$(head -c 300 "$TMP/gen_stream")"; fi

# stream_options.include_usage: after the finish chunk, one with empty choices and the counts
stream /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":12,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" "$TMP/usage_stream"
if grep '^data: {' "$TMP/usage_stream.sse" | tail -n 1 | sed 's/^data: //' |
    jq -e '(.choices | length) == 0 and .usage.completion_tokens == 12 and .usage.prompt_tokens > 0' >/dev/null &&
    [ "$(tail -n 2 "$TMP/usage_stream.sse" | head -n 1)" = "data: [DONE]" ]; then
    pass "stream_options.include_usage: a last chunk with the counts, then [DONE]"
else fail "stream_options.include_usage: a last chunk with the counts, then [DONE]" "$(tail -c 400 "$TMP/usage_stream.sse")"; fi

# --- stop strings cut the text before them, streamed or not
full=$(jq -r '.choices[0].text' "$TMP/gen.json")
word=$(printf '%s' "$full" | tr -c 'A-Za-z' ' ' | awk '{for (i = 1; i <= NF; i++) if (length($i) > 4) {print $i; exit}}')
want="${full%%"$word"*}"
post /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":40,\"stop\":[\"zzzz\",\"$word\"]}" "$TMP/stop.json" >/dev/null
stream /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":40,\"stop\":\"$word\",\"stream\":true}" "$TMP/stop_stream"
if [ -n "$word" ] && [ "$(jq -r '.choices[0].text' "$TMP/stop.json")" = "$want" ] &&
    [ "$(jq -r '.choices[0].finish_reason' "$TMP/stop.json")" = stop ] && [ "$(cat "$TMP/stop_stream")" = "$want" ]; then
    pass "stop string '$word' ends the text before it (streamed and not)"
else fail "stop string '$word' ends the text before it (streamed and not)" "$(head -c 300 "$TMP/stop.json")" "stream: $(cat "$TMP/stop_stream")"; fi

# --- batching does not mix sequences: 6 concurrent streams (4 slots, so 2
#     queue and join later) each get exactly their text when run alone.
prompts=("Once upon a time" "The whale" "Alice was" "It is a truth universally" "Holmes said" "The Time Traveller")
lens=(30 45 25 50 35 40)
for i in "${!prompts[@]}"; do
    post /v1/completions "{\"prompt\":\"${prompts[$i]}\",\"temperature\":0,\"max_tokens\":${lens[$i]}}" "$TMP/alone$i.json" >/dev/null
    jq -j '.choices[0].text' "$TMP/alone$i.json" >"$TMP/alone$i"
done
pids=()
for i in "${!prompts[@]}"; do
    if [ $((i % 2)) = 0 ]; then
        stream /v1/completions "{\"prompt\":\"${prompts[$i]}\",\"temperature\":0,\"max_tokens\":${lens[$i]},\"stream\":true}" "$TMP/conc$i" &
    else
        post /v1/completions "{\"prompt\":\"${prompts[$i]}\",\"temperature\":0,\"max_tokens\":${lens[$i]}}" "$TMP/conc$i.json" >/dev/null &
    fi
    pids+=($!)
done
wait "${pids[@]}"
mixed=0
for i in "${!prompts[@]}"; do
    [ $((i % 2)) = 1 ] && jq -j '.choices[0].text' "$TMP/conc$i.json" >"$TMP/conc$i"
    if ! cmp -s "$TMP/conc$i" "$TMP/alone$i" || [ ! -s "$TMP/alone$i" ]; then
        mixed=$((mixed + 1)); echo "     '${prompts[$i]}': alone '$(head -c 80 "$TMP/alone$i")' together '$(head -c 80 "$TMP/conc$i")'"
    fi
done
if [ "$mixed" = 0 ]; then pass "6 concurrent requests on 4 slots each get their text alone"
else fail "6 concurrent requests on 4 slots each get their text alone" "$mixed differ"; fi

# --- hostile input: each gets its status and error object
J=(-H "Content-Type: application/json" "${AUTH[@]}")
expect_status "malformed JSON: 400" 400 invalid_json POST /v1/chat/completions "${J[@]}" -d '{"messages": [}'
expect_status "a body that is not an object: 400" 400 invalid_json POST /v1/completions "${J[@]}" -d '[1,2]'
expect_status "messages of the wrong type: 400" 400 invalid_value POST /v1/chat/completions "${J[@]}" -d '{"messages":"hi"}'
expect_status "a message without content: 400" 400 invalid_type POST /v1/chat/completions "${J[@]}" -d '{"messages":[{"role":"user"}]}'
expect_status "an unknown role: 400" 400 invalid_value POST /v1/chat/completions "${J[@]}" -d '{"messages":[{"role":"wizard","content":"x"}]}'
expect_status "max_tokens as a string: 400" 400 invalid_value POST /v1/completions "${J[@]}" -d '{"prompt":"a","max_tokens":"10"}'
expect_status "negative max_tokens: 400" 400 invalid_value POST /v1/completions "${J[@]}" -d '{"prompt":"a","max_tokens":-5}'
expect_status "huge max_tokens: 400" 400 invalid_value POST /v1/completions "${J[@]}" -d '{"prompt":"a","max_tokens":1e12}'
expect_status "temperature as a string: 400" 400 invalid_value POST /v1/completions "${J[@]}" -d '{"prompt":"a","temperature":"hot"}'
expect_status "n = 2: 400" 400 invalid_value POST /v1/completions "${J[@]}" -d '{"prompt":"a","n":2}'
expect_status "stream not a boolean: 400" 400 invalid_type POST /v1/completions "${J[@]}" -d '{"prompt":"a","stream":"yes"}'
expect_status "stop of the wrong type: 400" 400 invalid_type POST /v1/completions "${J[@]}" -d '{"prompt":"a","stop":5}'
expect_status "a missing prompt: 400" 400 missing_field POST /v1/completions "${J[@]}" -d '{}'
long=$(printf 'the whale %.0s' $(seq 300))
expect_status "a prompt longer than the context: 400" 400 context_length_exceeded POST /v1/completions "${J[@]}" -d "{\"prompt\":\"$long\"}"
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' >"$TMP/big.json"
expect_status "a body over --max-body: 413" 413 request_too_large POST /v1/completions "${J[@]}" --data-binary @"$TMP/big.json"
expect_status "an unknown endpoint: 404" 404 not_found GET /v2/nothing "${AUTH[@]}"
expect_status "a wrong method: 405" 405 method_not_allowed GET /v1/chat/completions "${AUTH[@]}"
expect_status "no API key: 401" 401 invalid_api_key POST /v1/completions -d '{"prompt":"a"}'
expect_status "a wrong API key: 401" 401 invalid_api_key POST /v1/completions -H "Authorization: Bearer nope" -d '{"prompt":"a"}'
status=$(post /v1/completions "{\"prompt\":\"$PROMPT\",\"temperature\":0,\"max_tokens\":40}" "$TMP/after.json")
if [ "$status" = 200 ] && cmp -s <(printf '%s' "$PROMPT"; jq -j '.choices[0].text' "$TMP/after.json") "$TMP/cli_gen"; then
    pass "after the hostile requests the server still answers the same"
else fail "after the hostile requests the server still answers the same" "status $status"; fi

# --- slow clients hold only their own connection: 8 connections that send half a request
#     and stall (a slowloris) do not stop others from being served.
slow_pids=()
for _ in $(seq 8); do
    { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"pro' >&3 && sleep 30; } 2>/dev/null &
    slow_pids+=($!)
done
sleep 0.5
status=$(curl -s -m 10 -o "$TMP/slow.json" -w '%{http_code}' "${AUTH[@]}" -d "{\"prompt\":\"$PROMPT\",\"max_tokens\":5}" "$URL/v1/completions")
if [ "$status" = 200 ] && [ "$(curl -s -m 5 "$URL/health" | jq -r .status)" = ok ]; then
    pass "8 stalled half-sent requests do not block other clients"
else fail "8 stalled half-sent requests do not block other clients" "status $status"; fi
kill "${slow_pids[@]}" 2>/dev/null; wait "${slow_pids[@]}" 2>/dev/null

# expect_slot_freed NAME CANCELLED_BEFORE: within 2 s /health shows every slot free and one
# more cancelled request than before.
expect_slot_freed() {
    for _ in $(seq 40); do
        if curl -s "$URL/health" | jq -e --argjson c "$2" '.slots_busy == 0 and .requests_cancelled == $c + 1' >/dev/null
        then pass "$1"; return; fi
        sleep 0.05
    done
    fail "$1" "cancelled before: $2" "$(curl -s "$URL/health")"
}

# --- a client that goes away mid-stream frees its slot: with no max_tokens
#     the reply would run to the end of the context (256 positions).
cancelled=$(curl -s "$URL/health" | jq -r .requests_cancelled)
curl -sN "${AUTH[@]}" -d '{"prompt":"Once","temperature":0,"stream":true}' "$URL/v1/completions" | head -c 600 >/dev/null
expect_slot_freed "a client that disconnects mid-stream frees its slot" "$cancelled"

# --- the same for a client waiting for a whole (non-streamed) answer
cancelled=$(curl -s "$URL/health" | jq -r .requests_cancelled)
curl -s "${AUTH[@]}" -d '{"prompt":"Once","temperature":0}' "$URL/v1/completions" >/dev/null &
curl_pid=$!
for _ in $(seq 100); do # hang up once the request holds a slot
    [ "$(curl -s "$URL/health" | jq -r .slots_busy)" = 1 ] && break
    sleep 0.02
done
kill "$curl_pid"
wait "$curl_pid" 2>/dev/null
expect_slot_freed "a client that gives up on a whole answer frees its slot" "$cancelled"

# --- a bounded load test: 300 streamed requests, 32 in flight (on 4 slots), all succeed;
#     the latency and time-to-first-token percentiles are printed for the log.
if command -v python3 >/dev/null; then
    if python3 "$(dirname "$0")/../scripts/serve_load.py" --url "$URL" --api-key "$KEY" --requests 300 --concurrency 32 \
        --max-tokens 16 >"$TMP/load.txt" 2>&1; then
        pass "load: 300 streamed requests, 32 at a time, no errors"
        sed 's/^/     /' "$TMP/load.txt"
    else fail "load: 300 streamed requests, 32 at a time, no errors" "$(tail -n 8 "$TMP/load.txt")"; fi
else fail "load test needs python3 (apt-get install python3)"; fi

# --- IPv6: --host ::1 listens there, and says so with the address in brackets
if grep -q '^0\{31\}1 .* lo$' /proc/net/if_inet6 2>/dev/null; then
    "$LLAMAC" serve "${MODEL[@]}" --host ::1 --port 0 --parallel 1 2>"$TMP/server6.log" &
    pid6=$!
    port6=$(listening_port "$TMP/server6.log" "$pid6" '\[::1\]')
    if [ -n "$port6" ] && [ "$(curl -sg "http://[::1]:$port6/health" | jq -r .status)" = ok ]; then
        pass "--host ::1: /health answers on http://[::1]:PORT"
    else fail "--host ::1: /health answers on http://[::1]:PORT" "$(cat "$TMP/server6.log")"; fi
    kill "$pid6" 2>/dev/null
    wait "$pid6" 2>/dev/null
else skip "--host ::1 (this machine has no IPv6 loopback)"; fi

# --- SIGTERM: a clean exit 0; a stream still running (a whole context takes
#     seconds here) ends with an error event and [DONE]
curl -sN "${AUTH[@]}" -d '{"prompt":"Once","temperature":0,"stream":true}' "$URL/v1/completions" >"$TMP/inflight.sse" &
curl_pid=$!
for _ in $(seq 40); do grep -q '^data: {' "$TMP/inflight.sse" && break; sleep 0.05; done
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
rc=$?
SERVER_PID=
if [ "$rc" = 0 ]; then pass "SIGTERM shuts the server down with exit 0"
else fail "SIGTERM shuts the server down with exit 0" "exit $rc" "$(tail -n 3 "$TMP/server.log")"; fi
wait "$curl_pid"
if grep '^data: {' "$TMP/inflight.sse" | tail -n 1 | sed 's/^data: //' | jq -e '.error.message | test("shutting down")' >/dev/null &&
    [ "$(tail -n 2 "$TMP/inflight.sse" | head -n 1)" = "data: [DONE]" ]; then
    pass "SIGTERM ends an in-flight stream with an error event and [DONE]"
else fail "SIGTERM ends an in-flight stream with an error event and [DONE]" "$(tail -c 300 "$TMP/inflight.sse")"; fi
summary
