"""The typed method of each command, which :class:`matome.engine.Engine` inherits.

Generated from :data:`matome.commands.COMMANDS` by ``python -m matome._gen``: do not edit (a
test fails when this file is not what the generator writes).
"""

from __future__ import annotations

from matome import commands as cmd
from matome._engine_methods import _command_method


class _Commands:
    """One method per command: it builds the command from its keyword arguments and executes
    it (:func:`matome._engine_methods._command_method`)."""

    open_line = _command_method(cmd.OpenLine)
    change_line_limit = _command_method(cmd.ChangeLineLimit)
    change_billing = _command_method(cmd.ChangeBilling)
    change_line = _command_method(cmd.ChangeLine)
    regulate_line = _command_method(cmd.RegulateLine)
    lift_regulation = _command_method(cmd.LiftRegulation)
    set_notification = _command_method(cmd.SetNotification)
    register_provider = _command_method(cmd.RegisterProvider)
    list_service = _command_method(cmd.ListService)
    register_passport = _command_method(cmd.RegisterPassport)
    change_passport_limit = _command_method(cmd.ChangePassportLimit)
    change_passport_details = _command_method(cmd.ChangePassportDetails)
    delete_passport = _command_method(cmd.DeletePassport)
    reset_password = _command_method(cmd.ResetPassword)
    purchase = _command_method(cmd.Purchase)
    cancel = _command_method(cmd.Cancel)
    refund = _command_method(cmd.Refund)
    erase_personal_data = _command_method(cmd.ErasePersonalData)
    set_fee = _command_method(cmd.SetFee)
    issue_bills = _command_method(cmd.IssueBills)
