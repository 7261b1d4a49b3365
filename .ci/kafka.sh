#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) from Maven Central jars: no Docker, no tarball.
# Listeners: PLAINTEXT on PORT, the controller on PORT+1, and SASL_SSL (SCRAM-SHA-512) on PORT+2 with a
# certificate made at start: DIR/ca.pem is its CA, user "truthstream" with the password in DIR/sasl-password.
# Usage: .ci/kafka.sh start DIR PORT | .ci/kafka.sh stop DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=$1; dir=$2
case "$cmd" in
start)
  port=$3
  mkdir -p "$dir"
  if [ ! -d "$dir/libs" ] || [ -z "$(ls -A "$dir/libs" 2>/dev/null)" ]; then
    mvn -q -B -f "$here/kafka-pom.xml" dependency:copy-dependencies -DoutputDirectory="$dir/libs"
  fi
  cp="$dir/libs/*"
  # A throw-away CA and a broker certificate for 127.0.0.1, in a PKCS12 keystore.
  (
    cd "$dir"
    rm -f ca.* server.*
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=truthstream CI CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
      -out server.pem 2>/dev/null
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -out server.p12 -passout pass:keystore-ci
    openssl rand -hex 16 > sasl-password
  )
  sasl_password=$(cat "$dir/sasl-password")
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1)),SASL_SSL://127.0.0.1:$((port + 2))
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$((port + 2))
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/server.p12
ssl.keystore.password=keystore-ci
ssl.key.password=keystore-ci
log.dirs=$dir/data
num.partitions=4
# The tests write records timed in November 2025 (their Kafka timestamps too): keep them, or the
# retention check, every 5 minutes, deletes them under a running test.
log.retention.ms=-1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
  rm -rf "$dir/data"
  java -cp "$cp" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" \
    -c "$dir/server.properties" --add-scram "SCRAM-SHA-512=[name=truthstream,password=$sasl_password]" >/dev/null
  nohup java -Xmx512m -Dkafka.logs.dir="$dir" -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 120); do
    if (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && (echo >/dev/tcp/127.0.0.1/"$((port + 2))") 2>/dev/null; then
      echo "kafka up on 127.0.0.1:$port (SASL_SSL on $((port + 2)))"; exit 0
    fi
    sleep 0.5
  done
  echo "kafka did not start; see $dir/stdout.log and $dir/server.log" >&2; exit 1 ;;
stop)
  if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null || true; rm -f "$dir/pid"; fi ;;
esac
