# The Helm chart's checks (tests/test_helm_*.py, docs/kubernetes.md): a real
# Helm, kubeconform with offline schemas, and a real API server (kube-apiserver
# and kubectl built from the Go module proxy, Debian's etcd). Included by the
# Makefile; the tools are built or installed once into $(TOOLS) and exported
# to pytest (a test that finds a tool missing fails under make test).
HELM_VERSION := 4.3.1
KUBECONFORM_VERSION := 0.7.0
HELM_DOCS_VERSION := 1.14.2
# The Kubernetes version of the API server and of the schemas.
KUBE_VERSION := 1.37.2
KUBERNETES_VALIDATE_VERSION := 1.37.0
# The only version of the module the proxy serves with the example CRDs.
PROMETHEUS_OPERATOR_MODULE := v0.85.0

export HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
export KUBECONFORM := $(TOOLS)/kubeconform-$(KUBECONFORM_VERSION)/kubeconform
export HELM_DOCS := $(TOOLS)/helm-docs-$(HELM_DOCS_VERSION)/helm-docs
export KUBE_APISERVER := $(TOOLS)/kube-$(KUBE_VERSION)/kube-apiserver
export KUBECTL := $(TOOLS)/kube-$(KUBE_VERSION)/kubectl
export ETCD := /usr/bin/etcd
# How the README is made; tests/helm/chart.py HELM_DOCS_ARGS is the same.
HELM_DOCS_ARGS := --chart-search-root deploy/helm/statuswatch --sort-values-order file --skip-version-footer
KUBERNETES_VALIDATE_DIR := $(TOOLS)/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION)
export KUBERNETES_SCHEMAS := $(KUBERNETES_VALIDATE_DIR)/kubernetes_validate/kubernetes-json-schema/v$(basename $(KUBE_VERSION)).0-local-strict
export PROMETHEUS_OPERATOR_CRDS := $(TOOLS)/prometheus-operator-crds-$(PROMETHEUS_OPERATOR_MODULE)

.PHONY: helm-tools helm-test helm-docs
pytest: helm-tools
helm-tools: $(HELM) $(HELM_DOCS) $(KUBECONFORM) $(KUBERNETES_VALIDATE_DIR)/.installed $(PROMETHEUS_OPERATOR_CRDS)/.installed \
  $(KUBE_APISERVER) $(ETCD)

# The chart's checks alone.
helm-test: $(VENV)/.installed helm-tools
	REQUIRE_STACK_TOOLS=1 $(PY) -m pytest tests/test_helm_*.py

# The chart's README.md, from README.md.gotmpl and values.yaml's "# --"
# comments (tests/test_helm_metadata.py fails when it is not what this makes).
helm-docs: $(HELM_DOCS)
	$(HELM_DOCS) $(HELM_DOCS_ARGS)

$(HELM_DOCS):
	GOBIN=$(dir $@) $(GO) install github.com/norwoodj/helm-docs/cmd/helm-docs@v$(HELM_DOCS_VERSION)

$(HELM):
	GOBIN=$(dir $@) $(GO) install -ldflags "-X helm.sh/helm/v4/internal/version.version=v$(HELM_VERSION)" \
	  helm.sh/helm/v4/cmd/helm@v$(HELM_VERSION)

$(KUBECONFORM):
	GOBIN=$(dir $@) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@v$(KUBECONFORM_VERSION)

# The schemas only: the package's own validator is not used.
$(KUBERNETES_VALIDATE_DIR)/.installed: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --target $(dir $@) kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	touch $@

$(PROMETHEUS_OPERATOR_CRDS)/.installed:
	@mkdir -p $(dir $@)
	crds=$$($(GO) mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_MODULE) \
	  | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')/example/prometheus-operator-crd \
	  && install -m 0644 $$crds/monitoring.coreos.com_servicemonitors.yaml $$crds/monitoring.coreos.com_prometheusrules.yaml $(dir $@)
	touch $@

# About 8 minutes on two idle cores (far more on a busy machine); kubectl
# comes with it.
$(KUBE_APISERVER):
	tests/helm/build-kube.sh $(KUBE_VERSION) $(dir $@)

$(ETCD):
	$(call apt-install,etcd-server)
