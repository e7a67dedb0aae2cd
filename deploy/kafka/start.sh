#!/usr/bin/env bash
# Starts the apache/kafka image's broker with SASL, its admin password read from the Docker
# secret /run/secrets/kafka_admin_password (docker-compose.yml mounts this file and runs it).
#
# The image turns KAFKA_* variables into server.properties but drops values containing '=',
# which every JAAS configuration does; so the JAAS file is written here, and
# KAFKA_OPTS points the JVM at it. `admin` (PLAIN, on the internal and controller listeners)
# is the super user: the broker's own connections, the `topics` and `kafka-acls` one-shots and
# the healthcheck. Services and the SIEM authenticate with SCRAM-SHA-512 users that the
# `kafka-acls` one-shot creates (deploy/kafka/acls.sh).
set -euo pipefail

# Overridable for tests only (not KAFKA_*: the image would turn those into broker settings).
secrets="${CASEWORK_SECRETS_DIR:-/run/secrets}"
config="${CASEWORK_KAFKA_CONFIG_DIR:-/tmp/casework}"
run="${CASEWORK_KAFKA_RUN:-/etc/kafka/docker/run}"

admin_password="$(cat "$secrets/kafka_admin_password")"
if [[ ! "$admin_password" =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
  echo "kafka_admin_password: use 16 or more letters, digits, '-' or '_'" >&2
  exit 1
fi

umask 077
mkdir -p "$config"
cat > "$config/jaas.conf" <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin"
    password="${admin_password}"
    user_admin="${admin_password}";
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
JAAS

# For the healthcheck (kafka-broker-api-versions.sh --command-config).
cat > "$config/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${admin_password}";
PROPERTIES

export KAFKA_OPTS="${KAFKA_OPTS:-} -Djava.security.auth.login.config=$config/jaas.conf"
exec "$run"
