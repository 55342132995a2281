# The two commands of README.md. Both create or reuse .venv (tools/setup_env.sh).
.PHONY: md test setup

setup:
	tools/setup_env.sh

md: setup
	.venv/bin/mlipdrive run --model models/mace/mace-cual.pt --steps 200 --print-every 20

test: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -p no:cacheprovider
