# Shell helpers the bench/*/run.sh scripts source.

# Waits up to 20 s for something to listen on 127.0.0.1:PORT; exits the script otherwise.
wait_port() { # port [what]
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "${2:-nothing} did not listen on $1" >&2
  exit 1
}
