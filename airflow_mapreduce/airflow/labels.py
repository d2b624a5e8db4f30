"""Readable names for mapped task instances in the UI (``map_index_template``).

A local worker task knows its task spec, so it labels itself with what it reads
(plan/task_labels.py). A pod's label comes from its arguments (the spec URI) alone, e.g.
``map 00003``: reading specs at parse time or pushing labels through XCom would cost more
than the name is worth.
"""

from __future__ import annotations

from airflow_mapreduce.plan.task_labels import human_bytes, task_label

__all__ = [
    "LABEL_CONTEXT_KEY",
    "LOCAL_MAP_INDEX_TEMPLATE",
    "POD_MAP_INDEX_TEMPLATE",
    "human_bytes",
    "task_label",
]

LABEL_CONTEXT_KEY = "mapreduce_task_label"
LOCAL_MAP_INDEX_TEMPLATE = (
    "{{ " + LABEL_CONTEXT_KEY + " | default(task.task_id ~ ' ' ~ ti.map_index) }}"
)
POD_MAP_INDEX_TEMPLATE = (
    "{{ task.arguments[0].split('/')[-3] }} {{ task.arguments[0].split('/')[-2] }}"
)
