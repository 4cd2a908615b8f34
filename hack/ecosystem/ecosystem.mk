# The real operators muster is tested with, each built from its Go module at
# the version hack/ecosystem/NAME/go.mod pins (see hack/ecosystem/build.sh).
# The main Makefile includes this file:
#   make ecosystem-tested      builds the operators test/ecosystem runs
#   make ecosystem-all         builds all six into $(ECOSYSTEM_BIN)
#   make ecosystem-kuberay     builds one
# Each prints bin=, module=, dir= and crd= lines (build.sh's output).
ECOSYSTEM_OPERATORS := kuberay training-operator trainer jobset mpi-operator spark-operator
# The ones test/ecosystem runs (TestEcosystem<Name>).
ECOSYSTEM_TESTED := kuberay jobset training-operator trainer mpi-operator spark-operator
ECOSYSTEM_BIN ?= $(or $(BIN),bin)/ecosystem

.PHONY: ecosystem ecosystem-tested ecosystem-all $(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS))
ecosystem-tested: $(addprefix ecosystem-,$(ECOSYSTEM_TESTED))
ecosystem-all: $(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS))
$(addprefix ecosystem-,$(ECOSYSTEM_OPERATORS)): ecosystem-%:
	hack/ecosystem/build.sh $* $(ECOSYSTEM_BIN)
