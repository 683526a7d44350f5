"""``make brief``: ``docs/research-brief.md`` and its pictures, generated from the repository.

Every figure in the brief is read from ``bench/results/`` (a citation names the file and the path
inside it), every version from ``requirements.lock`` and the deployment files, and the diagrams
from ``docker-compose.yml``, the Helm chart and the services' event subscriptions. Editing a
measurement or a pin and running ``make brief`` is how the brief changes; ``make brief CHECK=1``
(run by CI) fails when the committed brief is not what the committed inputs produce.
"""
