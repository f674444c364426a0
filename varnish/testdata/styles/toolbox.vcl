vcl 4.1;
# Style "toolbox": an instance that invalidates the way varnish/toolbox's
# invalidate_os.vcl documents (PURGEONE, PURGEDIR, PURGEALL, a bearer token),
# written for cdnpurge's end-to-end tests. Template fields: {{.OriginHost}},
# {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in responses. The
# token is varnishd's PURGE_TOKEN environment variable: a request is
# authorized by "Authorization: Bearer TOKEN" (any case of "bearer").
#
# PURGE         not handled: PURGEONE is this VCL's purge. PURGE is piped to
#               the origin (the built-in VCL).
# PURGEONE <path>  return (purge) of Host + path: 200 "Successful purgeone
#               request".
# PURGEDIR <path>  bans every object of this Host whose URL starts with the
#               path: the request path is the start of a regular expression
#               (^PATH), so PURGEDIR / empties the Host. 200 "Successful
#               purgedir request".
# PURGEALL      bans everything: 200 "Successful purgeall request".
#               Not authorized: 405, body "Unauthorized request".
#
# Evidence: no cache header; X-Varnish (two ids on a hit) and Age.

import std;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

sub vcl_recv {
    set req.http.invalidate-user-authorized = "false";
    unset req.http.invalidate-message;
    if (std.getenv("PURGE_TOKEN") != "" &&
        std.tolower(req.http.Authorization) == "bearer " + std.tolower(std.getenv("PURGE_TOKEN"))) {
        set req.http.invalidate-user-authorized = "true";
    }
    call invalidate;
}

sub invalidate {
    if (req.method == "PURGEONE" || req.method == "PURGEDIR" || req.method == "PURGEALL") {
        if (req.http.invalidate-user-authorized != "true") {
            set req.http.invalidate-message = "Unauthorized request";
            return (synth(405));
        }
    }
    if (req.method == "PURGEONE") {
        set req.http.invalidate-message = "Successful purgeone request";
        return (purge);
    } else if (req.method == "PURGEDIR") {
        ban("obj.http.invalidate-url ~ ^" + req.url + " && obj.http.invalidate-host == " + req.http.host);
        set req.http.invalidate-message = "Successful purgedir request";
        return (synth(200));
    } else if (req.method == "PURGEALL") {
        ban("obj.status != 0");
        set req.http.invalidate-message = "Successful purgeall request";
        return (synth(200));
    }
}

sub vcl_backend_fetch {
    unset bereq.http.invalidate-user-authorized;
    unset bereq.http.invalidate-message;
}

sub vcl_backend_response {
    set beresp.http.invalidate-url = bereq.url;
    set beresp.http.invalidate-host = bereq.http.host;
}

sub vcl_deliver {
    unset resp.http.invalidate-url;
    unset resp.http.invalidate-host;
}

sub vcl_synth {
    if (req.http.invalidate-message) {
        synthetic(req.http.invalidate-message);
        return (deliver);
    }
}
