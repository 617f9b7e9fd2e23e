"""The shell that (re)creates the app's container and keeps the previous one if the new one
fails its health check (runbook §8; the Docker counterpart of ``deploys.services.release``).

Pure string building (no pyinfra), so the script can be read and tested on its own. It runs
on the VM host as one command:

1. Resolve the image from the checkout's commit; stop the running container and rename it
   ``<name>-previous`` (kept, with its image, env and options as they were).
2. ``docker run`` the new container, then poll the health URL on the host (bounded).
3. Healthy: remove the previous container and every image of this name except the current
   and the previous one (the rollback target of the next release). Exit 0.
4. Not healthy: print the container's last log lines, remove it, rename the previous one
   back and start it, confirm it is healthy and exit 1 with the reason. The app is never
   left down when the previous container was there.
"""

from __future__ import annotations

import shlex

from ..common.shell import wait_healthy_function

PREVIOUS_SUFFIX = "-previous"


def release_script(
    *,
    name: str,
    image: str,
    repo_path: str,
    run_args: list[str],
    health_url: str,
    health_timeout: int,
) -> str:
    """``run_args`` go between ``docker run -d --name NAME`` and the image; the commit label
    is added here, from the checkout."""
    q = shlex.quote
    previous = name + PREVIOUS_SUFFIX
    args = " ".join(q(a) for a in run_args)
    return f"""\
commit=$(git -C {q(repo_path)} rev-parse HEAD) || exit 1
image={q(image)}:"$commit"
{wait_healthy_function(health_url, health_timeout, interval=1)}
prev=""
docker rm -f {q(previous)} >/dev/null 2>&1
if docker container inspect {q(name)} >/dev/null 2>&1; then
  prev=$(docker container inspect --format '{{{{.Config.Image}}}}' {q(name)})
  docker stop {q(name)} >/dev/null && docker rename {q(name)} {q(previous)} || exit 1
fi
if docker run -d --name {q(name)} --label org.egograph.commit="$commit" {args} "$image" >/dev/null \\
  && wait_healthy; then
  docker rm -f {q(previous)} >/dev/null 2>&1
  docker image ls --format '{{{{.Repository}}}}:{{{{.Tag}}}}' {q(image)} \\
    | grep -vxF -e "$image" -e "${{prev:-$image}}" | xargs -r docker rmi >/dev/null 2>&1
  exit 0
fi
echo {q(f"{name} did not answer 200 on {health_url} within {health_timeout}s; last log lines:")} >&2
docker logs --tail 40 {q(name)} >&2 2>&1
if [ -z "$prev" ]; then
  echo "no earlier container of {name} to roll back to" >&2
  exit 1
fi
docker rm -f {q(name)} >/dev/null 2>&1
docker rename {q(previous)} {q(name)} && docker start {q(name)} >/dev/null
if wait_healthy; then
  echo "ROLLED BACK: the new release ($commit) of {name} failed its health check;" \\
    "the previous container ($prev) is running again and healthy" >&2
else
  echo "ROLLBACK FAILED: the previous container ($prev) of {name} is not healthy either" >&2
fi
exit 1
"""
