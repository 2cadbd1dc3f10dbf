"""Settings of the web app, resolved once by ``detector serve`` or a test."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from detector.errors import ConfigError
from detector.options import ScanOptions

TOKEN_ENV = "DETECTOR_TOKEN"


@dataclass
class WebSettings:
    data_dir: Path = Path("detector-data")
    max_upload_bytes: int = 2048 * 1024 * 1024
    workers: int = 1  # analysis workers, each with its own Analyzer
    token: Optional[str] = None  # None: no access control (fine on 127.0.0.1)
    max_queued: int = 100  # uploads waiting for a worker; beyond this uploads get 503
    max_attempts: int = 2  # interrupted this often: marked failed instead of resumed
    scan_options: ScanOptions = field(default_factory=ScanOptions)

    def validate(self) -> "WebSettings":
        if self.max_upload_bytes < 1:
            raise ConfigError("the upload size limit must be positive")
        if not 1 <= self.workers <= 32:
            raise ConfigError("workers must be between 1 and 32")
        if self.max_queued < 1:
            raise ConfigError("max_queued must be positive")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("the access token must be at least 8 characters")
        self.scan_options.validate()
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "detector.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def incoming_dir(self) -> Path:
        # partial uploads; same file system as uploads/ so the final move is an atomic rename
        return self.data_dir / "incoming"

    @classmethod
    def token_from_env(cls) -> Optional[str]:
        return os.environ.get(TOKEN_ENV) or None
