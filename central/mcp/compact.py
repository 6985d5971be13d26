"""SDK middleware: the text of every tool answer is its structured content as compact JSON.

The SDK writes a tool's answer twice: as ``structuredContent`` and, for clients that read only
text, as JSON indented by two spaces. Most assistants put that text in the model's context, where
the indentation costs tokens for nothing (a third of a page of meters). The answers are bounded by
their size in tokens, so the text is rewritten here without whitespace; the content is the same.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext


class CompactText:
    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/call" or not isinstance(result, dict):
            return result
        structured = result.get("structuredContent")
        content = result.get("content")
        if isinstance(structured, dict) and isinstance(content, list) and len(content) == 1:
            block = content[0]
            if isinstance(block, dict) and block.get("type") == "text":
                block["text"] = json.dumps(structured, separators=(",", ":"), ensure_ascii=False)
        return result
