"""The prompt tokens an image or a PDF costs, by each provider's documented accounting, and its limits.

- Gemini (ai.google.dev, "Image understanding" and "Document understanding"): an image with both sides at
  most 384 px is 258 tokens; a bigger one is cut into 768x768 tiles of 258 tokens each; a PDF page is 258
  tokens. Gemini 3 models count by ``media_resolution``, whose defaults are 1,120 tokens an image and 560
  a PDF page. A request's inline data is at most 20 MB in all; bigger media go through the Files API
  ("Files API": at most 2 GB a file, kept 48 hours), and enrichkit uploads any over ``GEMINI_FILE_ABOVE``.
- OpenAI (platform.openai.com, "Images and vision", detail ``high``, the GPT-4o/4.1 tiles): the image is
  scaled to fit 2048x2048, then its short side to 768 px; 85 tokens plus 170 a 512x512 tile. A PDF page
  is sent as its text and an image of the page: counted here as a full 1024x1325 page image (85 + 6 x
  170 = 1,105 tokens), the text on top of it not known before the call. At most 50 MB and 500 images a
  request.
- Anthropic (docs.anthropic.com, "Vision" and "PDF support"): an image is scaled to at most 1,568 px on
  its long side and ~1.15 megapixels, then costs width x height / 750 tokens; a PDF page 1,500 to 3,000
  tokens (3,000 counted, the upper bound). At most 32 MB and 100 images a request; an image at most 5 MB
  base64-encoded (5 MiB, as the API counts it) and 8000 px a side, 2000 px where a request has
  more than 20 images; at most 100 PDF pages a request.

An image whose size its header does not show is counted at the biggest it may be sent at.
"""

from __future__ import annotations

import dataclasses
import math

from enrichkit.providers.base import MediaAccounting, MediaLimits

GEMINI_FILE_ABOVE = 5_000_000
"""Gemini media bigger than this go as uploaded files: a pack then still holds a few rows' media inline (an
upload is a round trip more, where inline data rides along)."""
GEMINI = MediaLimits(20_000_000, 3_000, "gemini", file_above=GEMINI_FILE_ABOVE, file_bytes=2_000_000_000)
GEMINI_3 = dataclasses.replace(GEMINI, accounting="gemini3")
OPENAI = MediaLimits(request_bytes=50_000_000, items=500, accounting="openai")
ANTHROPIC = MediaLimits(
    request_bytes=32_000_000,
    items=100,
    accounting="anthropic",
    image_bytes=5 * 1024 * 1024,
    image_side=8_000,
    crowded=(20, 2_000),
    pages=100,
)

_PAGE = {"gemini": 258, "gemini3": 560, "openai": 1_105, "anthropic": 3_000}


def media_tokens(accounting: MediaAccounting, pdf: bool, width: int, height: int, pages: int = 0) -> int:
    """The prompt tokens of one image (``width`` x ``height`` px, 0 where unknown) or PDF (``pages``)."""
    if pdf:
        return _PAGE[accounting] * max(1, pages)
    if accounting == "gemini3":
        return 1_120
    if accounting == "gemini":
        if not width or not height:
            return 258 * 4
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)
    if accounting == "openai":
        if not width or not height:
            return 85 + 170 * 6
        scale = min(1.0, 2048 / max(width, height))
        w, h = width * scale, height * scale
        scale = min(1.0, 768 / min(w, h))
        return 85 + 170 * math.ceil(w * scale / 512) * math.ceil(h * scale / 512)
    if not width or not height:
        return 1_600
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return max(1, math.ceil(width * scale * height * scale / 750))
