"""Schemathesis against the published OpenAPI schema: generated valid and invalid
requests to every operation, as a write operator, find no server error (a response
that broke its own declared model would be a 500 too). Deterministic (derandomized)
and bounded: at most EXAMPLES requests per operation and generation method
(about 20 s here)."""

from __future__ import annotations

import warnings

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.http.conftest import Api

with warnings.catch_warnings():  # schemathesis 3 imports a deprecated jsonschema name
    warnings.simplefilter("ignore", DeprecationWarning)
    import schemathesis
    from schemathesis import DataGenerationMethod
    from schemathesis.exceptions import SkipTest
    from schemathesis.experimental import OPEN_API_3_1

OPEN_API_3_1.enable()  # FastAPI publishes OpenAPI 3.1; schemathesis 3 supports it behind this

EXAMPLES = 15  # about 20 s on an idle 2-core machine, well under a minute when busy


def run_examples(strategy, body) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def examples(case) -> None:
        body(case)

    examples()


def test_no_server_error_on_generated_requests(api: Api) -> None:
    raw = api.get("/api/v1/openapi.json", token=None).json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        schema = schemathesis.from_dict(raw, base_url="http://testserver")
        operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in raw["paths"].values())
    auth = {"Authorization": f"Bearer {api.tokens['operator-write']}"}
    seen: dict[str, set[int]] = {}
    failures: list[str] = []
    skipped = 0

    def send(case, operation) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=auth)
        response = api.call(kwargs.pop("method"), kwargs.pop("url"), token=None,
                            headers=kwargs.pop("headers", None),
                            params=kwargs.pop("params", None),
                            **({"json": kwargs.pop("json")} if "json" in kwargs else {}))
        seen.setdefault(operation.verbose_name, set()).add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{operation.verbose_name}: {response.status_code} "
                            f"{case.path_parameters} {case.query} {case.body!r}")

    for operation in operations:
        definition = operation.definition.raw
        has_path = any(p.get("in") == "path" for p in definition.get("parameters", []))
        # schemathesis 3 cannot make negative cases with a path parameter (a path segment
        # cannot carry its invalid values): hypothesis finds none and gives up slowly
        negative = "requestBody" in definition or not has_path
        for method in ((DataGenerationMethod.positive,) if not negative else
                       (DataGenerationMethod.positive, DataGenerationMethod.negative)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                strategy = operation.as_strategy(data_generation_method=method)

            try:
                run_examples(strategy, lambda case, _op=operation: send(case, _op))
            except SkipTest:  # no invalid input exists for an operation without parameters
                assert method is DataGenerationMethod.negative
                skipped += 1
            except Unsatisfiable:
                assert method is DataGenerationMethod.negative, operation.verbose_name
                skipped += 1
    assert failures == []
    assert skipped < len(operations)
    assert set(seen) == {op.verbose_name for op in operations}
    # the generators reached the handlers, not only the validators
    assert any(200 in codes or 201 in codes for codes in seen.values())
