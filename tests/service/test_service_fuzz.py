"""A bounded property-based fuzz of the OpenAPI document: schemathesis derives valid and
invalid requests for every operation (hypothesis strategies), none may get a 5xx.

Schemathesis' own pytest plugin (``schema.parametrize``) does not run under pytest 9, so the
strategies are driven by plain hypothesis ``@given`` tests, bounded in examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from ncf.service import create_app
from ncf.service.state import ENV_INDEX

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.generation.modes import GenerationMode  # noqa: E402

EXAMPLES = 15


@pytest.fixture(scope="module", params=["auto", "ivf"])
def operations(model_dirs: dict[str, Path], request: pytest.FixtureRequest) -> list[Any]:
    """The operations of a service ranking exactly (``auto`` on a small catalogue) or
    through the IVF index (NeuMF's two stages), so that the filters meet both paths."""
    if request.param == "ivf":
        pytest.importorskip("faiss")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_INDEX, request.param)
        app = create_app(model_dirs["neumf"], admin_token="s3cret")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(operations: list[Any], mode: GenerationMode) -> None:
    assert len(operations) >= 8
    for operation in operations:
        takes_input = any(len(p) for p in (operation.path_parameters, operation.query))
        if mode is GenerationMode.NEGATIVE and not (takes_input or operation.body):
            continue  # /healthz, /readyz, /metrics: no input to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                f"{response.status_code} {response.text[:300]}"
            )

        check()
