# The Helm chart's checks (tests/test_helm_*.py, docs/kubernetes.md). Included
# by the Makefile; the tools are built or installed once into $(TOOLS) and
# exported to pytest (a test that finds a tool missing fails under make test).
HELM_VERSION := 4.3.1

export HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm

.PHONY: helm-tools helm-test
pytest: helm-tools
helm-tools: $(HELM)

# The chart's checks alone.
helm-test: $(VENV)/.installed helm-tools
	REQUIRE_STACK_TOOLS=1 $(PY) -m pytest tests/test_helm_chart.py

$(HELM):
	GOBIN=$(dir $@) $(GO) install -ldflags "-X helm.sh/helm/v4/internal/version.version=v$(HELM_VERSION)" \
	  helm.sh/helm/v4/cmd/helm@v$(HELM_VERSION)
