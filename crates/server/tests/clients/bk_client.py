"""Drives the BlueKing metadata API with BlueKing's own ESB client
(bkapi-component-open, on bkapi-client-core), the way a BlueKing app
calls monitor_v3: credentials in the X-Bkapi-Authorization header, GETs
with query parameters, POSTs with JSON bodies. Reports what it saw as
one JSON object on stdout; the Rust test checks it.

usage: bk_client.py HOST PORT APP_CODE APP_SECRET
"""

import json
import sys
import urllib.request

from bkapi_component.open.client import Client


def client(endpoint, code, secret, user="admin"):
    c = Client(endpoint=endpoint)
    c.update_bkapi_authorization(bk_app_code=code, bk_app_secret=secret, bk_username=user)
    return c


def main():
    host, port, code, secret = sys.argv[1:5]
    endpoint = "http://%s:%s" % (host, port)
    ok = client(endpoint, code, secret)
    summary = {}

    created = ok.monitor_v3.metadata_create_time_series_group({
        "bk_data_id": 50010,
        "bk_biz_id": 7,
        "time_series_group_name": "client group",
        "label": "application",
        "operator": "admin",
        "metric_info_list": [{"field_name": "latency", "tag_list": ["route"]}],
    })
    summary["create"] = created
    group_id = created["data"]["time_series_group_id"]
    token = created["data"]["token"]

    # Data through bk-collector's custom report protocol.
    report = {
        "data_id": 50010,
        "access_token": token,
        "data": [
            {"metrics": {"latency": 12.5, "errors": 2}, "target": "10.0.0.1",
             "dimension": {"route": "/login"}, "timestamp": 1700000000000},
            {"metrics": {"latency": 20}, "target": "10.0.0.2",
             "dimension": {"route": "/home"}, "timestamp": 1700000060000},
        ],
    }
    req = urllib.request.Request(endpoint + "/v2/push/", data=json.dumps(report).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        summary["push"] = json.loads(resp.read())

    summary["get"] = ok.monitor_v3.metadata_get_time_series_group(
        {"time_series_group_id": group_id})
    summary["modify"] = ok.monitor_v3.metadata_modify_time_series_group({
        "time_series_group_id": group_id, "operator": "bob", "is_enable": False})
    summary["query"] = ok.monitor_v3.metadata_query_time_series_group(
        {"bk_biz_id": 7, "page": 1, "page_size": 10})
    summary["data_id"] = ok.monitor_v3.metadata_get_data_id({"bk_data_id": 50010})
    summary["labels"] = ok.monitor_v3.metadata_list_label(
        {"include_admin_only": False, "label_type": "type_label"})
    summary["wrong_secret"] = client(endpoint, code, "not-" + secret) \
        .monitor_v3.metadata_list_label({"include_admin_only": True})
    summary["delete"] = ok.monitor_v3.metadata_delete_time_series_group(
        {"time_series_group_id": group_id, "operator": "admin"})
    summary["get_deleted"] = ok.monitor_v3.metadata_get_time_series_group(
        {"time_series_group_id": group_id})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
