"""autodevhub: deployment-as-code for Docker Compose and Kubernetes."""

__version__ = "0.1.0"
