# The two commands of the README: `make test` and `make run`.
.PHONY: deps services test run demo stop build clean

# The local servers listen on ports of their own (the defaults of scripts/services), so a real
# Kafka, MongoDB or PostgreSQL on 9092/27017/5432 is never used by mistake. Every target below
# talks to the servers `scripts/services up` started: KAFKA_PORT / MONGO_PORT / PG_PORT move them,
# and the addresses follow (POSTGRES_URL: the tests' admin URL, they create a database per scenario).
export KAFKA_PORT ?= 21092
export MONGO_PORT ?= 21017
export PG_PORT ?= 21432
export KAFKA_BROKERS = 127.0.0.1:$(KAFKA_PORT)
export MONGO_URI = mongodb://127.0.0.1:$(MONGO_PORT)
export POSTGRES_URL = postgres://commerce@127.0.0.1:$(PG_PORT)/postgres
# The CA scripts/services makes for PostgreSQL's TLS (the TLS tests' sslrootcert).
export POSTGRES_CA = $(or $(SERVICES_RUN_DIR),$(CURDIR)/.run)/postgres-tls/ca.crt
export COMMERCE_AUTH_KEY_FILE = $(or $(SERVICES_RUN_DIR),$(CURDIR)/.run)/auth/dev-public.pem
export COMMERCE_AUTH_SIGNING_KEY_FILE = $(or $(SERVICES_RUN_DIR),$(CURDIR)/.run)/auth/dev-signing.pem

deps:
	scripts/bootstrap

services: deps
	scripts/services up

build: deps
	swift build

# Installs what is missing, starts the local broker, Mongo-wire server and PostgreSQL, runs every test
# (scripts/test-services first: that scripts/services owns what it starts and only that).
# `swift build` first: the resilience tests run the real `archiver` executable.
test: services
	scripts/test-services
	swift build
	swift test

# Starts the servers and the archiver sidecar in the foreground (Ctrl-C stops it).
run: services
	swift build -c release --product archiver
	.build/release/archiver run

stop:
	scripts/services down

clean: stop
	rm -rf .build .run

# The archiver end to end: events in, history, compensation, dead letter and metrics out.
demo:
	scripts/demo
