"""Type stubs of the native module (the Rust half of aims_monitor, built with PyO3).

Use the wrappers in ``aims_monitor`` (``assess``, ``build_reference``, ``Monitor``), which
accept DataFrames and dict configurations; these are the shapes they pass down.
"""

from os import PathLike
from typing import Any, Dict, List, Optional, Union

__version__: str

_Path = Union[str, PathLike[str]]

class InputError(ValueError):
    """Bad input data, with the agent's HTTP error fields.

    ``field`` (``features.income``, ``prediction.label``, ...), ``reason`` (``missing_field``,
    ``wrong_type``, ``invalid_number``, ``unknown_class``, ``invalid_timestamp``, ...) and
    ``message`` are those of an item of the agent's ``/v1/events`` error reply. ``column`` is the
    table or CSV column at fault, ``row`` the 0-based row of a table, ``line`` the 1-based line of
    a file; each is None where it does not apply.
    """

    field: Optional[str]
    reason: Optional[str]
    message: Optional[str]
    column: Optional[str]
    row: Optional[int]
    line: Optional[int]

class ConfigError(ValueError):
    """A configuration, reference profile or objectives file that cannot be used."""

class Profile:
    """A reference profile (per-feature quantile edges, category frequencies, base rates)."""

    @staticmethod
    def load(path: _Path) -> Profile: ...
    def save(self, path: _Path) -> None: ...
    def to_json(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def rows(self) -> int: ...

def assess(
    reference: Any,
    current: Any,
    config_path: Optional[str] = None,
    config_json: Optional[str] = None,
    objectives: Optional[_Path] = None,
) -> str:
    """The assessment as JSON text. ``reference``: a path, a Profile or an Arrow stream
    (``__arrow_c_stream__``); ``current``: a path or an Arrow stream."""

def build_reference(
    data: Any, config_path: Optional[str] = None, config_json: Optional[str] = None
) -> Profile: ...

class Monitor:
    def __init__(
        self,
        config_path: Optional[str] = None,
        config_json: Optional[str] = None,
        profile: Optional[Profile] = None,
        agent_id: Optional[str] = None,
        spool_dir: Optional[str] = None,
        collector_url: Optional[str] = None,
        start_timeout: float = 30.0,
    ) -> None: ...
    def record(self, event: Dict[str, Any]) -> bool: ...
    def record_batch(self, table: Any, fold_here: bool = False) -> Dict[str, Any]:
        """``{"accepted": int, "rejected": int, "dropped": int, "errors": [{"row", "column",
        "field", "reason", "message"}]}``"""
    def label(self, id: Any, value: Any) -> bool: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> Dict[str, Union[int, float, Dict[str, Union[int, float]]]]: ...
    def __enter__(self) -> Monitor: ...
    def __exit__(self, *args: Any) -> bool: ...

