# Allmende: the two commands a newcomer needs are `make cloud` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := .build/collections/ansible_collections/allmende/cloud

.PHONY: cloud test test-long prereqs venv lint unit sanity collection molecule integration bench bench-netbox clean

## cloud: a local NetBox, the testbed registered in it, and the cloud deployed onto it (the main job)
cloud: venv
	$(BIN)/allmende netbox up
	$(BIN)/allmende testbed up --netbox
	$(BIN)/allmende apply site

## test: everything CI runs (lint, unit tests, collection build, molecule scenarios, driver integration)
test: venv
	scripts/run-tests.sh

## test-long: what `make test` runs, and the long scenarios (scripts/run-tests.sh: LONG_SCENARIOS)
test-long: venv
	ALLMENDE_TEST_LONG=1 scripts/run-tests.sh

prereqs:
	scripts/host-prereqs.sh

venv: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt pyproject.toml scripts/host-prereqs.sh
	scripts/host-prereqs.sh
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

lint: venv
	scripts/run-tests.sh lint

unit: venv
	scripts/run-tests.sh unit

sanity: venv
	scripts/run-tests.sh sanity

collection: venv
	scripts/run-tests.sh collection

molecule: venv
	scripts/run-tests.sh molecule

integration: venv
	scripts/run-tests.sh integration

## bench: driver overhead against plain ansible-playbook (prints the ratio)
bench: venv
	$(BIN)/python scripts/bench-driver-overhead.py

## bench-netbox: inventory plugin against netbox.netbox.nb_inventory at 3,268 devices, clean and problem data (prints a table)
bench-netbox: venv
	$(BIN)/python scripts/bench-netbox-inventory.py

clean:
	-$(BIN)/allmende testbed down --all
	-$(BIN)/allmende netbox down
	rm -rf .build
