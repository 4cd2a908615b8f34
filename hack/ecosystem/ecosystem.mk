# The real operators muster is tested with, each built from its Go module at
# the version hack/ecosystem/NAME/go.mod pins (see hack/ecosystem/build.sh).
# The main Makefile may `include hack/ecosystem/ecosystem.mk`; then
#   make ecosystem             builds all six into $(BIN)/ecosystem
#   make ecosystem-kuberay     builds one
# Each prints bin=, module=, dir= and crd= lines (build.sh's output).
ECOSYSTEM_OPERATORS := kuberay training-operator trainer jobset mpi-operator spark-operator
ECOSYSTEM_BIN ?= $(or $(BIN),bin)/ecosystem

.PHONY: ecosystem $(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS))
ecosystem: $(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS))
$(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS)): ecosystem-%:
	hack/ecosystem/build.sh $* $(ECOSYSTEM_BIN)
