# Sourced by .ci/run: the dashboard's browser tests (dashboard/browser_test.go)
# drive a headless Chromium, and fail under CI without one. When none is on
# the PATH, install Debian's chromium package.
if ! command -v chromium >/dev/null 2>&1 &&
	! command -v chromium-browser >/dev/null 2>&1 &&
	! command -v google-chrome >/dev/null 2>&1; then
	echo "== installing chromium for the dashboard's browser tests"
	if [ "$(id -u)" -ne 0 ]; then
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	else
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	fi
	command -v chromium
fi
