"""SQL of the service's control rows: the submission pause and the deployment name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import insert_for
from batchline.domain.custom_ids import (
    check_deployment,
    new_deployment_name,
)
from batchline.models import Control

PAUSE_CONTROL = "submission_paused"


DEPLOYMENT_CONTROL = "deployment"


def submission_paused(session: Session) -> str | None:
    control = session.get(Control, PAUSE_CONTROL)
    return control.value if control is not None else None


def pause_submission(session: Session, reason: str, now: datetime) -> None:
    stmt = insert_for(session, Control).values(name=PAUSE_CONTROL, value=reason, updated_at=now)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Control.name], set_={"value": reason, "updated_at": now}
        )
    )


def resume_submission(session: Session, only_if: str | None = None) -> bool:
    """Lift the pause; with `only_if`, only a pause for exactly that reason.

    `only_if` is for a pause lifted on evidence about one reason (the key works
    again): a different pause set meanwhile (billing) stays.
    """
    control = session.get(Control, PAUSE_CONTROL)
    if control is None or (only_if is not None and control.value != only_if):
        return False
    session.delete(control)
    return True


def deployment_name(session: Session, configured: str, now: datetime) -> str:
    """The name in this deployment's custom_ids: the setting, or the one its database keeps."""
    if configured:
        return configured
    stored = session.get(Control, DEPLOYMENT_CONTROL)
    if stored is None or not stored.value:
        stmt = insert_for(session, Control).values(
            name=DEPLOYMENT_CONTROL, value=new_deployment_name(), updated_at=now
        )
        # Two workers naming it at once: the first insert wins, both read it back.
        session.execute(stmt.on_conflict_do_nothing(index_elements=[Control.name]))
        session.expire_all()
        stored = session.get(Control, DEPLOYMENT_CONTROL)
    assert stored is not None and stored.value
    return check_deployment(stored.value)
