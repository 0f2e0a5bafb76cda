"""What the BudPipeline examples import from `budpipeline.commons`: their settings and topic."""

from dataclasses import dataclass

from conveyor.config import Settings


@dataclass(frozen=True)
class _Settings:
    budapp_app_id: str = "budapp"


settings = _Settings()
CALLBACK_TOPIC = Settings().callback_topic
