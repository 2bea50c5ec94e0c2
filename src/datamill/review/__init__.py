"""Human review (issue 17): a project file of items, annotators, assignments, answers and history
(``schema``, ``store``), made from any dataset (``sources``, ``items``, ``project``); a local web app
where people accept, edit, reject, compare, rate and label (``web``, ``queue``, ``answers``); the
decisions back into training files (``decide``, ``export``) and into recipes (``recipe_input``); Label
Studio and Argilla interchange (``interchange``); agreement (``agreement``); the ``datamill review``
commands (``cli``)."""

DEFAULT_PORT = 8765
ROLES = ("annotator", "adjudicator")  # an adjudicator reads everyone's assignments
