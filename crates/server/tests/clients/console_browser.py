"""Drives the Sundial console in headless Chromium (Debian's chromium and
chromium-driver) with Selenium, as a user would: runs one statement per
language and checks that the chart drew one line per expected series with
the expected values, and that the table holds every point. Then opens the
series browser, the cardinality, storage and slow-query pages.

Usage: console_browser.py URL EXPECTATIONS.json SCREENSHOT_DIR [KEY SECRET]

EXPECTATIONS: {"database": ..., "languages": [{"lang", "statement",
"series": {label: [[ms, value], ...]}, "rows": n}], "metrics": {name: series}}
Prints "ok" and exits 0 when everything matched; raises otherwise.
"""

import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

TIMEOUT = 30


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("SUNDIAL_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    service = Service(os.environ.get("SUNDIAL_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def login_if_asked(driver, key, secret):
    """Fills the key dialog when the page opened it."""
    dialog = driver.find_element(By.ID, "login")
    if dialog.get_attribute("open") is None:
        return False
    if key is None:
        raise AssertionError("the console asked for a key although auth is off")
    driver.find_element(By.ID, "login-ak").send_keys(key)
    driver.find_element(By.ID, "login-sk").send_keys(secret)
    driver.find_element(By.ID, "login-ok").click()
    return True


def run_statement(driver, lang, statement, key, secret):
    Select(driver.find_element(By.ID, "lang")).select_by_value(lang)
    Select(driver.find_element(By.ID, "range")).select_by_value("statement")
    area = driver.find_element(By.ID, "statement")
    area.clear()
    driver.execute_script("arguments[0].value = arguments[1];", area, statement)
    runs = driver.execute_script("return window.sundialConsole.runs")
    # Ctrl+Enter in the editor runs the statement.
    area.send_keys(Keys.CONTROL, Keys.ENTER)
    asked = False

    def finished(d):
        nonlocal asked
        if not asked:
            asked = login_if_asked(d, key, secret)
        return d.execute_script("return window.sundialConsole.runs") > runs

    WebDriverWait(driver, TIMEOUT).until(finished)
    return asked, driver.execute_script("return window.sundialConsole.last")


def check_language(driver, want, key, secret, shots):
    asked, last = run_statement(driver, want["lang"], want["statement"], key, secret)
    if "error" in last:
        raise AssertionError(f"{want['lang']}: {last['error']}")
    drawn = {s["label"]: [[p[0], p[1]] for p in s["points"]] for s in last["series"]}
    if drawn != want["series"]:
        raise AssertionError(f"{want['lang']}: drew {drawn}, expected {want['series']}")
    # uPlot's legend lists the time axis and one entry per line.
    legend = driver.find_elements(By.CSS_SELECTOR, "#chart .u-legend .u-series")
    if len(legend) != len(want["series"]) + 1:
        raise AssertionError(f"{want['lang']}: legend has {len(legend)} entries")
    labels = {e.find_element(By.CSS_SELECTOR, ".u-label").text.strip() for e in legend[1:]}
    if labels != set(want["series"]):
        raise AssertionError(f"{want['lang']}: legend labels {labels}")
    # Hovering the plot shows the values under the cursor in the legend.
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, "#chart .u-over")).perform()
    values = [e.find_element(By.CSS_SELECTOR, ".u-value").text for e in legend[1:]]
    if all(v in ("", "--") for v in values):
        raise AssertionError(f"{want['lang']}: hovering shows no values: {values}")
    rows = driver.find_elements(By.CSS_SELECTOR, "#result tr")
    if len(rows) - 1 != want["rows"]:
        raise AssertionError(f"{want['lang']}: table has {len(rows) - 1} rows, expected {want['rows']}")
    table_text = driver.find_element(By.ID, "result").text
    for points in want["series"].values():
        for _, value in points:
            if str(value) not in table_text:
                raise AssertionError(f"{want['lang']}: value {value} not in the table")
    driver.save_screenshot(os.path.join(shots, f"query-{want['lang']}.png"))
    return asked


def check_pages(driver, want, shots):
    driver.get(driver.current_url.split("#")[0] + "#cardinality")
    total = sum(want["metrics"].values())
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: f"{total} series" in d.find_element(By.ID, "card-total").text)
    table = driver.find_element(By.ID, "card-metrics").text
    for metric, series in want["metrics"].items():
        if f"{metric} {series}" not in table:
            raise AssertionError(f"cardinality lacks {metric} {series}: {table}")
    driver.save_screenshot(os.path.join(shots, "cardinality.png"))

    driver.get(driver.current_url.split("#")[0] + "#browse")
    first = sorted(want["metrics"])[0]
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: first in d.find_element(By.ID, "metrics").text)
    for li in driver.find_elements(By.CSS_SELECTOR, "#metrics li"):
        if li.text.startswith(first):
            li.click()
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "tagkeys").text.strip() != "")
    driver.find_element(By.CSS_SELECTOR, "#tagkeys li").click()
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "tagvalues").text.strip() != "")
    driver.save_screenshot(os.path.join(shots, "series.png"))

    driver.get(driver.current_url.split("#")[0] + "#storage")
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_elements(By.ID, "storage-table") or "answered" in d.find_element(By.ID, "storage").text)
    text = driver.find_element(By.ID, "storage").text
    if "default" not in text:
        raise AssertionError(f"storage page: {text}")
    levels = driver.find_element(By.ID, "levels-table").text
    for level in ("partition", "day", "week", "wide"):
        if f"default {level}" not in levels:
            raise AssertionError(f"blocks per level lacks {level}: {levels}")
    driver.save_screenshot(os.path.join(shots, "storage.png"))

    driver.get(driver.current_url.split("#")[0] + "#queries")
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "statement" in d.find_element(By.ID, "slow").text)
    slow = driver.find_element(By.ID, "slow").text
    if want.get("slow_statement") and want["slow_statement"] not in slow:
        raise AssertionError(f"slow queries lack {want['slow_statement']}: {slow}")
    driver.save_screenshot(os.path.join(shots, "queries.png"))

    if want.get("bk_group"):
        driver.get(driver.current_url.split("#")[0] + "#bk")
        WebDriverWait(driver, TIMEOUT).until(
            lambda d: want["bk_group"] in d.find_element(By.ID, "bk-groups").text)
        groups = driver.find_element(By.ID, "bk-groups").text
        for metric in want["bk_metrics"]:
            if metric not in groups:
                raise AssertionError(f"BlueKing page lacks metric {metric}: {groups}")
        driver.save_screenshot(os.path.join(shots, "bk.png"))


def main():
    url, expectations, shots = sys.argv[1:4]
    key, secret = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
    with open(expectations) as f:
        want = json.load(f)
    os.makedirs(shots, exist_ok=True)
    driver = browser()
    try:
        driver.get(url + "/console/")
        WebDriverWait(driver, TIMEOUT).until(
            lambda d: d.execute_script("return !!window.sundialConsole"))
        driver.find_element(By.ID, "database").clear()
        driver.find_element(By.ID, "database").send_keys(want["database"])
        asked = [check_language(driver, lang, key, secret, shots) for lang in want["languages"]]
        if key is not None and not asked[0]:
            raise AssertionError("auth is on but the console never asked for a key")
        check_pages(driver, want, shots)
    except Exception:
        driver.save_screenshot(os.path.join(shots, "failure.png"))
        raise
    finally:
        driver.quit()
    print("ok")


if __name__ == "__main__":
    main()
