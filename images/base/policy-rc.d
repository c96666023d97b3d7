#!/bin/sh
# Images never start services from package scripts.
exit 101
