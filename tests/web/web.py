#!/usr/bin/env python3
"""The client side of tests/integration/web_test.cpp.

  web.py get URL [CA_FILE]
      One HTTP GET (urllib; https verified against CA_FILE); prints {"status", "headers", "body"} as JSON.
  web.py browse BASE_URL SCREENSHOT_DIR|- DOMAIN...
      Opens BASE_URL/check?domain=DOMAIN for each domain in headless
      Chromium (selenium, Debian's chromium and chromium-driver), waits for
      the report and prints, per domain, what the page shows: the verdict's
      headline and code, the steps listed while it ran, the JSON link.
      Then fills the form on BASE_URL/ with the first domain and submits it.
      With a directory, saves DIR/DOMAIN.png of each page.

Waits are for conditions, generous (a loaded machine), never fixed sleeps.
"""
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

WAIT = 240  # seconds: a bound for a stuck page, not a timing expectation


def get(url, ca_file=None):
    req = urllib.request.Request(url)
    # As a reverse proxy would add it (tests of [web] trusted_proxies).
    if os.environ.get("X_FORWARDED_FOR"):
        req.add_header("X-Forwarded-For", os.environ["X_FORWARDED_FOR"])
    ctx = None
    if ca_file:
        import ssl
        ctx = ssl.create_default_context(cafile=ca_file)
        ctx.check_hostname = False  # the URL names an address; the chain is verified
    try:
        with urllib.request.urlopen(req, timeout=WAIT, context=ctx) as r:
            status, headers, body = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers), e.read()
    print(json.dumps({"status": status, "headers": headers,
                      "body": body.decode("utf-8", "replace")}))


def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="danemta-web-chromium.")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions", "--window-size=820,1300",
              "--user-data-dir=" + profile):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(WAIT)
    d.danemta_profile = profile  # removed by quit()
    return d


def quit(d):
    import shutil
    d.quit()
    shutil.rmtree(d.danemta_profile, ignore_errors=True)


def wait_for_result(d):
    """Waits until the page shows a verdict or a refusal; returns what it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ended(drv):
        if drv.find_elements(By.ID, "verdict"):
            return True
        state = drv.find_elements(By.ID, "state")
        return bool(state) and state[0].get_attribute("class") == "error"

    WebDriverWait(d, WAIT, poll_frequency=0.2).until(ended)
    out = {"url": d.current_url, "state": d.find_element(By.ID, "state").text,
           "steps": [li.get_attribute("textContent")
                     for li in d.find_elements(By.CSS_SELECTOR, "#steps li")]}
    v = d.find_elements(By.ID, "verdict")
    if v:
        out["status"] = v[0].get_attribute("data-status")
        out["code"] = v[0].get_attribute("data-code")
        out["verdict_text"] = v[0].text
        out["json_link"] = d.find_element(By.ID, "json").get_attribute("href")
        out["share_link"] = d.find_element(By.ID, "share").get_attribute("href")
        out["text"] = d.find_element(By.ID, "result").text
    return out


def browse(base, shots, domains):
    from selenium.webdriver.common.by import By
    d = driver()
    result = {"pages": {}}
    try:
        for dom in domains:
            d.get(base + "/check?domain=" + dom)
            result["pages"][dom] = wait_for_result(d)
            if shots != "-":
                os.makedirs(shots, exist_ok=True)
                d.save_screenshot(os.path.join(shots, dom + ".png"))
        # The form: type the domain, submit, land on its shareable URL.
        d.get(base + "/")
        box = d.find_element(By.ID, "domain")
        box.send_keys(domains[0])
        d.find_element(By.CSS_SELECTOR, "#form button").click()
        result["form"] = wait_for_result(d)
        # Bad input: the form page again, with the reason.
        d.get(base + "/check?domain=-bad-.example")
        result["bad_input"] = d.find_element(By.ID, "error").text
    finally:
        quit(d)
    print(json.dumps(result))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "get":
        get(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif len(sys.argv) >= 5 and sys.argv[1] == "browse":
        browse(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
