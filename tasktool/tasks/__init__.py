"""Tasks: the registry (light, imported at start-up) and one module per task (heavy, imported on use)."""

from tasktool.tasks.registry import TASKS, TaskSpec, resolve

__all__ = ["TASKS", "TaskSpec", "resolve"]
