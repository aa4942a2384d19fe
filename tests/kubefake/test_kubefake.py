"""The double, driven by the official `kubernetes` client over real HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.kubefake import KubeFake

pytestmark = pytest.mark.k8s


def deployment(name: str = "web", image: str = "app:1", replicas: int = 2, **extra: Any) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", **extra},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_kubeconfig_loads_and_serves_version(kube: KubeFake, tmp_path: Path) -> None:
    path = kube.kubeconfig(tmp_path / "config")
    _contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert active["name"] == "kubefake"
    assert active["context"]["namespace"] == "default"
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        assert client.VersionApi(api).get_code().git_version.startswith("v1.31")
    anonymous = httpx.get(f"{kube.url}/api/v1/namespaces")
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "Unauthorized"


def test_core_crud_label_selectors_and_errors(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}), ("c", {})]:
        created = core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": labels}, "data": {"k": name}}
        )
        assert created.metadata.uid and created.metadata.resource_version
    selected = {
        "tier=web": ["a"],
        "tier!=web": ["b", "c"],
        "tier": ["a", "b"],
        "!tier": ["c"],
        "tier in (web,db)": ["a", "b"],
        "tier notin (web)": ["b", "c"],
        "tier=web,env=prod": ["a"],
    }
    for selector, names in selected.items():
        listed = core.list_namespaced_config_map("default", label_selector=selector)
        assert [i.metadata.name for i in listed.items] == names, selector
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=b")
    assert [i.metadata.name for i in by_name.items] == ["b"]
    assert core.read_namespaced_config_map("a", "default").data == {"k": "a"}

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert exists.value.status == 409
    assert status_of(exists.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as missing_ns:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "a"}})
    assert status_of(missing_ns.value)["message"] == 'namespaces "nope" not found'

    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert invalid.value.status == 422
    assert status_of(invalid.value)["details"]["causes"][0]["field"] == "metadata.name"

    deleted = core.delete_namespaced_config_map("a", "default")
    assert deleted["status"] == "Success"
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("a", "default")
    body = status_of(gone.value)
    assert (gone.value.status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    assert body["message"] == 'configmaps "a" not found'


def test_apps_deployment_create_list_delete(kube_client: Any) -> None:
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment("web"))
    apps.create_namespaced_deployment("default", deployment("api"))
    listed = apps.list_namespaced_deployment("default", label_selector="")
    assert listed.kind == "DeploymentList" and listed.api_version == "apps/v1"
    assert [d.metadata.name for d in listed.items] == ["api", "web"]
    everywhere = apps.list_deployment_for_all_namespaces()
    assert len(everywhere.items) == 2
    page = apps.list_namespaced_deployment("default", limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    rest = apps.list_namespaced_deployment("default", limit=1, _continue=page.metadata._continue)
    assert [d.metadata.name for d in rest.items] == ["web"]
    with pytest.raises(ApiException) as mismatch:
        bad = deployment("bad")
        bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        apps.create_namespaced_deployment("default", bad)
    assert "does not match template" in status_of(mismatch.value)["message"]
    apps.delete_namespaced_deployment("web", "default")
    assert [d.metadata.name for d in apps.list_namespaced_deployment("default").items] == ["api"]


ALL_TYPES = [
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("v1", "Event"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("coordination.k8s.io/v1", "Lease"),
    ("argoproj.io/v1alpha1", "Rollout"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
]


def test_dynamic_client_discovers_and_uses_every_type(kube_dynamic: DynamicClient) -> None:
    for api_version, kind in ALL_TYPES:
        resource = kube_dynamic.resources.get(api_version=api_version, kind=kind)
        namespace = "default" if resource.namespaced else None
        listed = resource.get(namespace=namespace)
        assert listed.kind == f"{kind}List", kind
    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    assert set(deployments.subresources) == {"status", "scale"}
    pods = kube_dynamic.resources.get(api_version="v1", kind="Pod")
    assert set(pods.subresources) == {"status", "log"}
    ssar = kube_dynamic.resources.get(
        api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview"
    )
    assert ssar.verbs == ["create"]
    rollouts = kube_dynamic.resources.get(api_version="argoproj.io/v1alpha1", kind="Rollout")
    created = rollouts.create(
        body={
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"replicas": 1},
        },
        namespace="default",
    )
    assert created.metadata.generation == 1


def test_crds_listed_and_can_be_left_out(kube_client: Any, tmp_path: Path) -> None:
    ext = client.ApiextensionsV1Api(kube_client)
    names = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    assert {"rollouts.argoproj.io", "servicemonitors.monitoring.coreos.com"} <= names
    with KubeFake(with_crds=False) as bare:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(bare.kubeconfig(tmp_path / "bare")), client_configuration=configuration
        )
        with client.ApiClient(configuration) as api:
            assert client.ApiextensionsV1Api(api).list_custom_resource_definition().items == []
            groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
            assert "argoproj.io" not in groups and "apps" in groups


def test_server_side_apply_creates_updates_and_drops_fields(
    kube: KubeFake, kube_dynamic: DynamicClient
) -> None:
    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    first = deployment(labels={"team": "a", "old": "x"}, annotations={"note": "1"})
    created = deployments.server_side_apply(body=first, field_manager="autodevhub")
    assert created.metadata.generation == 1
    assert kube.requests_to("PATCH")[-1].content_type == "application/apply-patch+yaml"
    assert kube.requests_to("PATCH")[-1].query["fieldManager"] == "autodevhub"

    second = deployment(image="app:2", labels={"team": "a"})
    updated = deployments.server_side_apply(body=second, field_manager="autodevhub")
    assert updated.metadata.generation == 2
    meta = updated.to_dict()["metadata"]
    assert meta["labels"] == {"team": "a"}
    assert "annotations" not in meta
    assert updated.spec.template.spec.containers[0].image == "app:2"
    [entry] = updated.metadata.managedFields
    assert (entry.manager, entry.operation) == ("autodevhub", "Apply")

    same = deployments.server_side_apply(body=second, field_manager="autodevhub")
    assert same.metadata.generation == 2
    assert same.metadata.resourceVersion == updated.metadata.resourceVersion  # a no-op write

    without_replicas = deployment(image="app:2", labels={"team": "a"})
    del without_replicas["spec"]["replicas"]
    dropped = deployments.server_side_apply(body=without_replicas, field_manager="autodevhub")
    # Nobody owns replicas any more, so it is removed, and the server defaults it again.
    assert dropped.spec.replicas == 1
    assert not any(
        "f:replicas" in m.fieldsV1.get("f:spec", {}) for m in dropped.metadata.managedFields
    )


def test_apply_conflict_names_the_other_manager_and_force_takes_over(
    kube_client: Any, kube_dynamic: DynamicClient
) -> None:
    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(body=deployment(replicas=2), field_manager="autodevhub")
    client.AppsV1Api(kube_client).patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 5}}, field_manager="hpa-controller"
    )
    # Same value as the other manager holds: shared ownership, no conflict.
    deployments.server_side_apply(body=deployment(replicas=5), field_manager="autodevhub")
    client.AppsV1Api(kube_client).patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 6}}, field_manager="hpa-controller"
    )

    with pytest.raises(ApiException) as conflict:
        deployments.server_side_apply(body=deployment(replicas=3), field_manager="autodevhub")
    body = status_of(conflict.value)
    assert (conflict.value.status, body["reason"]) == (409, "Conflict")
    assert body["details"]["causes"] == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "hpa-controller" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    assert body["message"].startswith(
        'Apply failed with 1 conflict: conflict with "hpa-controller"'
    )

    forced = deployments.server_side_apply(
        body=deployment(replicas=3), field_manager="autodevhub", force_conflicts=True
    )
    assert forced.spec.replicas == 3
    owners = {m["manager"]: m["fieldsV1"] for m in forced.to_dict()["metadata"]["managedFields"]}
    assert "f:replicas" in owners["autodevhub"]["f:spec"]
    assert "hpa-controller" not in owners

    scaled = client.AppsV1Api(kube_client).patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 8}}, field_manager="kube-controller-manager"
    )
    assert (scaled.kind, scaled.spec.replicas, scaled.status.selector) == ("Scale", 8, "app=web")
    with pytest.raises(ApiException) as by_hpa:
        deployments.server_side_apply(body=deployment(replicas=3), field_manager="autodevhub")
    [cause] = status_of(by_hpa.value)["details"]["causes"]
    assert (
        cause["message"]
        == 'conflict with "kube-controller-manager" with subresource "scale" using apps/v1'
    )


def test_apply_needs_field_manager_and_dry_run_stores_nothing(
    kube: KubeFake, kube_dynamic: DynamicClient
) -> None:
    url = f"{kube.url}/apis/apps/v1/namespaces/default/deployments/web"
    headers = {
        "Authorization": f"Bearer {kube.token}",
        "Content-Type": "application/apply-patch+yaml",
    }
    answer = httpx.patch(url, content=json.dumps(deployment()), headers=headers)
    assert answer.status_code == 400 and "fieldManager" in answer.json()["message"]

    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    preview = deployments.server_side_apply(
        body=deployment(), field_manager="autodevhub", dry_run="All"
    )
    assert preview.spec.replicas == 2
    assert kube.get("apps", "v1", "deployments", "default", "web") is None

    deployments.server_side_apply(body=deployment(), field_manager="autodevhub")
    diff = deployments.server_side_apply(
        body=deployment(image="app:9"), field_manager="autodevhub", dry_run="All"
    )
    assert diff.spec.template.spec.containers[0].image == "app:9"
    assert diff.metadata.generation == 2
    stored = kube.get("apps", "v1", "deployments", "default", "web")
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    deployments.delete(name="web", namespace="default", dry_run="All")
    assert kube.get("apps", "v1", "deployments", "default", "web") is not None


def test_lease_replace_with_stale_resource_version_conflicts(kube_client: Any) -> None:
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "deploy-lock"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 30},
        },
    )
    stale_version = lease.metadata.resource_version
    lease.spec.holder_identity = "b"
    renewed = leases.replace_namespaced_lease("deploy-lock", "default", lease)
    assert renewed.spec.holder_identity == "b"
    assert int(renewed.metadata.resource_version) > int(stale_version)
    lease.spec.holder_identity = "c"
    lease.metadata.resource_version = stale_version
    with pytest.raises(ApiException) as stale:
        leases.replace_namespaced_lease("deploy-lock", "default", lease)
    body = status_of(stale.value)
    assert (stale.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]

    release = {"preconditions": {"resourceVersion": stale_version}}
    with pytest.raises(ApiException) as precondition:
        leases.delete_namespaced_lease("deploy-lock", "default", body=release)
    assert "Precondition failed" in status_of(precondition.value)["message"]
    release = {"preconditions": {"resourceVersion": renewed.metadata.resource_version}}
    leases.delete_namespaced_lease("deploy-lock", "default", body=release)
    assert leases.list_namespaced_lease("default").items == []


def test_status_subresource_and_patch_flavours(kube: KubeFake, kube_client: Any) -> None:
    apps = client.AppsV1Api(kube_client)
    with_status = {**deployment(), "status": {"replicas": 99}}
    created = apps.create_namespaced_deployment("default", with_status)
    assert created.status is None or created.status.replicas is None

    patched = apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"replicas": 2, "readyReplicas": 1}, "spec": {"replicas": 7}}
    )
    assert patched.status.ready_replicas == 1
    assert patched.spec.replicas == 2 and patched.metadata.generation == 1

    smp = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}}
    merged = apps.patch_namespaced_deployment("web", "default", smp)
    assert [c.name for c in merged.spec.template.spec.containers] == ["app", "side"]
    assert merged.metadata.generation == 2 and merged.status.ready_replicas == 1

    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    assert apps.patch_namespaced_deployment("web", "default", ops).spec.replicas == 4
    merge = apps.patch_namespaced_deployment(
        "web",
        "default",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert merge.metadata.labels == {"a": "b"} and merge.metadata.generation == 3
    content_types = [r.content_type for r in kube.requests_to("PATCH")]
    assert content_types == [
        "application/strategic-merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/merge-patch+json",
    ]


def test_auto_ready_deployment_and_job(kube: KubeFake, kube_client: Any) -> None:
    kube.auto_ready = True
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    status = apps.read_namespaced_deployment_status("web", "default").status
    assert (status.observed_generation, status.available_replicas, status.updated_replicas) == (
        1,
        3,
        3,
    )
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions["Progressing"] == ("True", "NewReplicaSetAvailable")
    assert conditions["Available"][0] == "True"
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    assert apps.read_namespaced_deployment("web", "default").status.observed_generation == 2

    batch = client.BatchV1Api(kube_client)
    job = {
        "metadata": {"name": "migrate"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}
            }
        },
    }
    batch.create_namespaced_job("default", job)
    job_status = batch.read_namespaced_job("migrate", "default").status
    assert job_status.succeeded == 1
    assert ("Complete", "True") in [(c.type, c.status) for c in job_status.conditions]
    new_image = {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "m:2"}]}}}}
    with pytest.raises(ApiException) as immutable:
        batch.patch_namespaced_job("migrate", "default", new_image)
    assert immutable.value.status == 422
    assert "field is immutable" in status_of(immutable.value)["message"]


def rollout(image: str) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": {
                "blueGreen": {
                    "activeService": "web",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                }
            },
        },
    }


def test_auto_ready_rollout_blue_green_pause_and_promote(
    kube: KubeFake, kube_client: Any, kube_dynamic: DynamicClient
) -> None:
    kube.auto_ready = True
    core = client.CoreV1Api(kube_client)
    for name in ("web", "web-preview"):
        core.create_namespaced_service(
            "default",
            {
                "metadata": {"name": name},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            },
        )
    rollouts = kube_dynamic.resources.get(api_version="argoproj.io/v1alpha1", kind="Rollout")
    rollouts.server_side_apply(body=rollout("app:1"), field_manager="autodevhub")
    first = rollouts.get(name="web", namespace="default").status
    assert first.phase == "Healthy" and first.observedGeneration == "1"
    assert first.blueGreen.activeSelector == first.currentPodHash == first.stableRS

    rollouts.server_side_apply(body=rollout("app:2"), field_manager="autodevhub")
    paused = rollouts.get(name="web", namespace="default").status
    assert paused.phase == "Paused"
    assert paused.pauseConditions[0].reason == "BlueGreenPause"
    assert paused.blueGreen.previewSelector == paused.currentPodHash != first.currentPodHash
    assert paused.blueGreen.activeSelector == first.currentPodHash
    preview = core.read_namespaced_service("web-preview", "default").spec
    assert preview.selector["rollouts-pod-template-hash"] == paused.currentPodHash
    assert preview.cluster_ip.startswith("10.96.") and preview.ports[0].protocol == "TCP"

    # What `kubectl argo rollouts promote` sends.
    rollouts.status.patch(
        name="web",
        namespace="default",
        body={"status": {"pauseConditions": None}},
        content_type="application/merge-patch+json",
    )
    promoted = rollouts.get(name="web", namespace="default").status
    assert promoted.phase == "Healthy"
    assert promoted.blueGreen.activeSelector == paused.currentPodHash
    active = core.read_namespaced_service("web", "default").spec.selector
    assert active["rollouts-pod-template-hash"] == paused.currentPodHash


def test_pod_log_and_events(kube: KubeFake, kube_client: Any) -> None:
    kube.add_pod(
        "default",
        "web-1",
        {"app": "web"},
        phase="Pending",
        container_statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 3,
                "image": "app:1",
                "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            }
        ],
    )
    kube.set_pod_log("default", "web-1", "one\ntwo\nthree\n")
    kube.add_event("default", "Pod", "web-1", "BackOff", "Back-off restarting failed container")
    kube.add_event("default", "Pod", "other", "Pulled", "pulled", type="Normal")
    core = client.CoreV1Api(kube_client)
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert pods[0].status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert core.read_namespaced_pod_log("web-1", "default", tail_lines=2) == "two\nthree\n"
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=web-1").items
    assert [(e.reason, e.type) for e in events] == [("BackOff", "Warning")]


def test_self_subject_access_review_and_forbidden(kube: KubeFake, kube_client: Any) -> None:
    auth = client.AuthorizationV1Api(kube_client)

    def allowed(verb: str, resource: str, group: str = "apps") -> bool:
        review = {
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "group": group,
                    "namespace": "default",
                }
            }
        }
        return auth.create_self_subject_access_review(review).status.allowed

    assert allowed("delete", "deployments")
    kube.deny("delete", "deployments", namespace="default")
    assert not allowed("delete", "deployments")
    assert allowed("patch", "deployments")
    client.AppsV1Api(kube_client).create_namespaced_deployment("default", deployment())
    with pytest.raises(ApiException) as forbidden:
        client.AppsV1Api(kube_client).delete_namespaced_deployment("web", "default")
    assert forbidden.value.status == 403
    assert 'cannot delete resource "deployments"' in status_of(forbidden.value)["message"]


def test_watch_streams_changes(kube: KubeFake, kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})

    def later() -> None:
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})

    seen = []
    stream = watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=2)
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            threading.Thread(target=later).start()
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "a"), ("MODIFIED", "a")]


def test_write_hook_and_injected_fault(kube: KubeFake, kube_client: Any) -> None:
    written = []
    kube.on_write(lambda event: written.append((event.type, event.object["kind"])))
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    assert written == [("ADDED", "Secret")]
    kube.inject_error("GET", "/secrets/s", 500, "etcd is sad")
    with pytest.raises(ApiException) as failed:
        core.read_namespaced_secret("s", "default")
    assert failed.value.status == 500 and status_of(failed.value)["message"] == "etcd is sad"
    assert core.read_namespaced_secret("s", "default").metadata.name == "s"


def test_apply_merges_containers_by_name_and_keeps_other_managers_fields(
    kube_client: Any, kube_dynamic: DynamicClient
) -> None:
    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    config_v1 = deployment()
    config_v1["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    deployments.server_side_apply(body=config_v1, field_manager="autodevhub")
    sidecar = {
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]}}}
    }
    client.AppsV1Api(kube_client).patch_namespaced_deployment(
        "web", "default", sidecar, field_manager="injector"
    )

    config_v2 = deployment(image="app:2")
    config_v2["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    live = deployments.server_side_apply(body=config_v2, field_manager="autodevhub").to_dict()
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "app:2"), ("proxy", "envoy:1")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    injector = next(m for m in live["metadata"]["managedFields"] if m["manager"] == "injector")
    assert (
        'k:{"name":"proxy"}'
        in injector["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    )

    client.AppsV1Api(kube_client).patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "hotfix"}]}}}},
        field_manager="kubectl-set",
    )
    with pytest.raises(ApiException) as conflict:
        deployments.server_side_apply(body=config_v2, field_manager="autodevhub")
    [cause] = status_of(conflict.value)["details"]["causes"]
    assert cause["field"] == '.spec.template.spec.containers[name="app"].image'
    assert cause["message"] == 'conflict with "kubectl-set" using apps/v1'


def test_deployment_controller_keeps_replica_set_revisions_and_collects_them(
    kube: KubeFake, kube_dynamic: DynamicClient
) -> None:
    kube.auto_ready = True
    deployments = kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    for image in ("app:1", "app:2", "app:1"):
        deployments.server_side_apply(body=deployment(image=image), field_manager="autodevhub")
    revision = "deployment.kubernetes.io/revision"
    sets = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
        for rs in kube.objects("ReplicaSet")
    }
    assert sets["app:1"]["metadata"]["annotations"][revision] == "3"
    assert sets["app:2"]["metadata"]["annotations"][revision] == "2"
    assert (sets["app:1"]["spec"]["replicas"], sets["app:2"]["spec"]["replicas"]) == (2, 0)
    stored = kube.get("apps", "v1", "deployments", "default", "web")
    assert stored["metadata"]["annotations"][revision] == "3"
    assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"] == 3

    replica_sets = kube_dynamic.resources.get(api_version="apps/v1", kind="ReplicaSet")
    owned = replica_sets.get(namespace="default", label_selector="app=web")
    assert len(owned.items) == 2
    deployments.delete(name="web", namespace="default", propagation_policy="Orphan")
    assert len(kube.objects("ReplicaSet")) == 2
    deployments.server_side_apply(body=deployment(name="api"), field_manager="autodevhub")
    deployments.delete(name="api", namespace="default")
    assert all(rs["metadata"]["name"].startswith("web-") for rs in kube.objects("ReplicaSet"))


def test_field_sets_round_trip_through_fields_v1() -> None:
    from tests.kubefake import fieldmanager

    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    paths = set(fieldmanager.leaves(obj, "main", has_status=True))
    encoded = fieldmanager.encode(paths)
    assert fieldmanager.decode(encoded) == paths
    ports = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']["f:ports"]
    assert list(ports) == ['k:{"containerPort":80}']
    assert (
        fieldmanager.path_text(("spec", 'k:{"name":"app"}', "image")) == '.spec[name="app"].image'
    )


def test_patch_directives_new_crds_and_finalizers(kube: KubeFake, kube_client: Any) -> None:
    apps = client.AppsV1Api(kube_client)
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    apps.create_namespaced_deployment("default", two)
    drop = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    patched = apps.patch_namespaced_deployment("web", "default", drop)
    assert [c.name for c in patched.spec.template.spec.containers] == ["app"]
    with pytest.raises(ApiException) as failed_test:
        apps.patch_namespaced_deployment(
            "web", "default", [{"op": "test", "path": "/spec/replicas", "value": 9}]
        )
    assert failed_test.value.status == 422

    from tests.kubefake import crd_manifest

    kube.create(crd_manifest("example.com", "widgets", "Widget", "v1"))
    custom = client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "finalizers": ["example.com/cleanup"]},
        },
    )
    custom.delete_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")
    held = custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        "w",
        [{"op": "remove", "path": "/metadata/finalizers"}],
        _content_type="application/json-patch+json",
    )
    assert kube.get("example.com", "v1", "widgets", "default", "w") is None


def test_readiness_predicate_and_failed_rollout(kube: KubeFake, kube_client: Any) -> None:
    kube.auto_ready = lambda obj: obj["metadata"]["name"] != "bad"
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment("good"))
    apps.create_namespaced_deployment("default", deployment("bad"))
    assert apps.read_namespaced_deployment_status("good", "default").status.available_replicas == 2
    bad = apps.read_namespaced_deployment_status("bad", "default").status
    assert (bad.observed_generation, bad.available_replicas, bad.unavailable_replicas) == (
        1,
        None,
        2,
    )

    kube.fail_deployment("default", "bad")
    apps.patch_namespaced_deployment("bad", "default", {"metadata": {"labels": {"x": "y"}}})
    conditions = {
        c.type: c for c in apps.read_namespaced_deployment("bad", "default").status.conditions
    }
    assert (conditions["Progressing"].status, conditions["Progressing"].reason) == (
        "False",
        "ProgressDeadlineExceeded",
    )
    assert conditions["Available"].status == "False"


def test_crashloop_gives_pods_events_and_logs_to_diagnose(kube: KubeFake, kube_client: Any) -> None:
    kube.auto_ready = True
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    kube.crashloop("default", "web", log="starting\nKeyError: DATABASE_URL\n")
    status = apps.read_namespaced_deployment("web", "default").status
    assert (status.available_replicas, status.unavailable_replicas) == (None, 2)
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 2
    waiting = pods[0].status.container_statuses[0]
    assert (waiting.state.waiting.reason, waiting.restart_count) == ("CrashLoopBackOff", 4)
    assert pods[0].metadata.owner_references[0].kind == "ReplicaSet"
    name = pods[0].metadata.name
    assert core.read_namespaced_pod_log(name, "default", tail_lines=1) == "KeyError: DATABASE_URL\n"
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}")
    assert [e.reason for e in events.items] == ["BackOff"]
