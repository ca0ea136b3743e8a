"""The headless deploy module: ship an approved (or chosen) flow configuration to a target.

Targets: ``local`` (Prompt flow's serving app on loopback, with an optional weighted A/B router),
``kubernetes`` (Deployment, Service and Gateway API HTTPRoute manifests), ``azureml`` and
``azureml-kubernetes`` (online endpoints with a rollout that never drops traffic to zero) and ``webapp``
(a Docker build context and the ``az`` commands). Every target materialises the same bundle
(:mod:`llmops_tui.deploy.prepare`) and ends with the endpoint test (:mod:`llmops_tui.deploy.endpoint_test`).

No textual, no rich; promptflow and the Azure SDK are imported only inside the functions that need them.

    from llmops_tui.deploy.api import DeployOptions, deploy
    result = deploy(workspace_root, DeployOptions("named_entity_recognition", "dev", "local", llm_endpoint="sandbox"))
"""
