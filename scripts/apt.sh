# Sourced by the setup scripts: installing Debian packages, with one `apt-get update` per run
# (GANTRY_APT_UPDATED carries that across the scripts one run calls).

apt_update_once() {
  if [[ -z "${GANTRY_APT_UPDATED:-}" ]]; then
    apt-get update -qq
    export GANTRY_APT_UPDATED=1
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt_update_once
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
