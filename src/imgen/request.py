"""What the user asked for, independent of any API dialect.

`fields` holds the API body fields the user (or the profile) set explicitly, under their API
names; nothing the API would default is ever added. `params` are passed through unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEQUENTIAL_TOTAL = 15  # Seedream: reference images + generated images, at most

# API body field -> the command-line flag that sets it, so every message can name the flag.
FLAG_FOR_FIELD: dict[str, str] = {
    "n": "-n",
    "size": "--size",
    "quality": "--quality",
    "style": "--style",
    "background": "--background",
    "output_format": "--output-format",
    "output_compression": "--compression",
    "moderation": "--moderation",
    "response_format": "--response-format",
    "user": "--user",
    "image": "--image",
    "watermark": "--watermark",
    "seed": "--seed",
    "guidance_scale": "--guidance",
    "sequential_image_generation": "--sequential",
    "sequential_image_generation_options": "--max-images",
    "stream": "--stream",
    "partial_images": "--partials",
    "aspect": "--aspect",
    "aspect_ratio": "--aspect",
    "negative_prompt": "--negative-prompt",
    "input_fidelity": "--input-fidelity",
    "steps": "--steps",
    "safety_tolerance": "--safety-tolerance",
    "mj_speed": "--mj-speed",
    "mask": "--mask",
    "prompt": "PROMPT",
    "model": "--model",
}


def flag_for(field_name: str) -> str:
    return FLAG_FOR_FIELD.get(field_name, f"--param {field_name}")


# The API's own names for n that params can pass through, unseen by n: what the body asks for is
# what is billed, and what may be saved.
COUNT_PARAMS = ("num_results",)


@dataclass
class GenerateRequest:
    prompt: str
    model: str
    fields: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # imgen edit: the images to change (the first is the one a mask applies to), and the mask;
    # files.inputs.InputImage each (read from their headers; below files/, so not named here).
    inputs: tuple[Any, ...] = ()
    mask: Any = None

    @property
    def edit(self) -> bool:
        return bool(self.inputs)

    @property
    def n(self) -> int:
        value = self.params.get("n", self.fields.get("n", 1))
        return value if isinstance(value, int) and value > 0 else 1

    @property
    def stream(self) -> bool:
        return bool(self.fields.get("stream") or self.params.get("stream"))

    @property
    def sequential(self) -> bool:
        """A Seedream sequence: the answer holds up to max_images related images, not n."""
        return {**self.fields, **self.params}.get("sequential_image_generation") == "auto"

    def most_images(self) -> int:
        """How many images the answer can hold: n (or an API's own name for it passed in params,
        Bria's num_results), or a Seedream sequence's max_images (which, when not given, is
        whatever room the 15-image total leaves after the references)."""
        body = {**self.fields, **self.params}
        if not self.sequential:
            aliased = [v for k, v in self.params.items() if k in COUNT_PARAMS and isinstance(v, int) and not isinstance(v, bool)]
            return max([self.n, *aliased])
        options = body.get("sequential_image_generation_options")
        wanted = options.get("max_images") if isinstance(options, dict) else None
        if isinstance(wanted, int) and wanted > 0:
            return wanted
        refs = body.get("image") or []
        return max(1, SEQUENTIAL_TOTAL - (len(refs) if isinstance(refs, list) else 1))

    def body(self) -> dict[str, Any]:
        """The JSON body for OpenAI-shaped APIs: model, prompt, the set fields, then params."""
        return {"model": self.model, "prompt": self.prompt, **self.fields, **self.params}
