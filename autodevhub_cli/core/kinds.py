"""Facts about the Kubernetes kinds autodevhub renders, shared by render and the target (no
imports: the commands that only read the cluster load none of the render path)."""

from __future__ import annotations

# Apply order: what others depend on comes first (Helm and kubectl order objects the same way).
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "Job",
    "Deployment",
    "Rollout",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
    "ServiceMonitor",
    "PrometheusRule",
]
