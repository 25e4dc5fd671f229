"""`{{ env.X }}` in a component's file: the name of a variable, kept, not its value.

Dagster renders templates when the code location loads, and an unset variable becomes None without
a word. Credentials and URLs must not be read then (the code location loads with no secret set, and
a run reads them when it starts), so these attributes keep the template as written and only the
variable's name is taken from it.
"""

import re
from typing import Optional

ENV_TEMPLATE = re.compile(
    r"""^\{\{\s*env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\))\s*\}\}$""")


def variable_of(value: object) -> Optional[str]:
    """The variable `{{ env.X }}` or `{{ env('X') }}` names, or None when `value` is not one."""
    match = ENV_TEMPLATE.match(value.strip()) if isinstance(value, str) else None
    return (match.group(1) or match.group(2)) if match else None


def holds_template(value: object) -> bool:
    """Whether a value of a rest_api config holds `{{`, anywhere: templates are not rendered there."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(holds_template(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_template(item) for item in value)
    return False
