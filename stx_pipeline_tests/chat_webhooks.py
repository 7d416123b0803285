"""What Slack and Microsoft Teams incoming webhooks refuse, as validators for the
loopback `WebhookReceiver`: each returns the error text the service would answer (HTTP
400), or None for a body it accepts.

Slack: a JSON object with a non-empty `text` or non-empty `blocks` (else `no_text`),
Block Kit blocks within their documented limits (else `invalid_blocks`). Teams (Workflows
"post to a channel when a webhook request is received", and the older connectors): a
`message` whose `attachments` carry an Adaptive Card.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

SLACK_TOP_LEVEL = {"text", "blocks", "attachments", "username", "icon_emoji", "icon_url",
                   "channel", "thread_ts", "mrkdwn", "unfurl_links", "unfurl_media"}
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def _absolute_url(url: Any) -> bool:
    parts = urlsplit(url) if isinstance(url, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def _text_object(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    return (isinstance(obj, dict) and obj.get("type") in kinds
            and isinstance(obj.get("text"), str) and 0 < len(obj["text"]) <= limit)


def _slack_block_error(block: Any) -> str | None:
    if not isinstance(block, dict):
        return "block is not an object"
    kind = block.get("type")
    if kind == "header":
        return None if _text_object(block.get("text"), 150, ("plain_text",)) else "header text"
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            return "section needs text or fields"
        if text is not None and not _text_object(text, 3000):
            return "section text"
        if fields is not None and not (
            isinstance(fields, list) and 0 < len(fields) <= 10
            and all(_text_object(f, 2000) for f in fields)
        ):
            return "section fields"
        return None
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= 25:
            return "actions elements"
        for el in elements:
            if not (isinstance(el, dict) and el.get("type") == "button"
                    and _text_object(el.get("text"), 75, ("plain_text",))
                    and ("url" not in el or (_absolute_url(el["url"]) and len(el["url"]) <= 3000))):
                return "button"
        return None
    if kind == "context":
        elements = block.get("elements")
        ok = isinstance(elements, list) and 0 < len(elements) <= 10
        return None if ok and all(_text_object(e, 3000) for e in elements) else "context"
    if kind == "divider":
        return None
    return f"unknown block type {kind!r}"


def slack_rejects(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "invalid_payload"
    unknown = set(body) - SLACK_TOP_LEVEL
    if unknown:
        return f"invalid_payload: unknown keys {sorted(unknown)}"
    text, blocks = body.get("text"), body.get("blocks")
    has_text = isinstance(text, str) and text.strip() != ""
    has_blocks = isinstance(blocks, list) and len(blocks) > 0
    if not (has_text or has_blocks):
        return "no_text"
    if text is not None and not isinstance(text, str):
        return "invalid_payload: text"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            error = _slack_block_error(block)
            if error:
                return f"invalid_blocks: {error}"
    return None


def _card_element_error(el: Any) -> str | None:
    if not isinstance(el, dict):
        return "element is not an object"
    kind = el.get("type")
    if kind == "TextBlock":
        text = el.get("text")
        return None if isinstance(text, str) and text.strip() else "TextBlock without text"
    if kind == "FactSet":
        facts = el.get("facts")
        ok = isinstance(facts, list) and facts and all(
            isinstance(f, dict) and isinstance(f.get("title"), str)
            and isinstance(f.get("value"), str) for f in facts)
        return None if ok else "FactSet facts"
    if kind in ("Container", "ColumnSet", "Image"):
        return None
    return f"unknown element {kind!r}"


def teams_rejects(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("type") != "message":
        return "Bad payload: expected a message"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "Bad payload: no attachments"
    for att in attachments:
        if not isinstance(att, dict) or att.get("contentType") != ADAPTIVE:
            return "Bad payload: attachment is not an Adaptive Card"
        card = att.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return "Bad payload: content is not an AdaptiveCard"
        if not isinstance(card.get("version"), str):
            return "Bad payload: card version"
        elements = card.get("body")
        if not isinstance(elements, list) or not elements:
            return "Bad payload: empty card"
        for el in elements:
            error = _card_element_error(el)
            if error:
                return f"Bad payload: {error}"
        for action in card.get("actions", []):
            if not (isinstance(action, dict) and action.get("type") == "Action.OpenUrl"
                    and _absolute_url(action.get("url")) and action.get("title")):
                return "Bad payload: action"
    return None
