"""What the inference server and the integrations share: caller authentication (``auth``),
request ids (``request_ids``), OpenAI-shaped errors (``openai_errors``) and reading the OpenAI
wire format (``openai_wire``). Both ``auditlog.server`` and ``auditlog.integrations`` import from
here; neither imports the other. Nothing is imported eagerly.
"""

from __future__ import annotations
