vcl 4.1;
# Style "wordpress": an instance configured for the WordPress "Proxy Cache
# Purge" plugin (varnish-http-purge) the way its documentation and the VCLs
# written for it do, for cdnpurge's end-to-end tests. Template fields:
# {{.OriginHost}}, {{.OriginPort}}, {{.Grace}}; {{.Name}} ({{.Name}})
# appears nowhere in responses and no token is used: the ACL decides.
#
# PURGE <path>  from acl purge (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8)
#               bans, by what the object stores (x-url, x-host):
#                 X-Purge-Method: regex   the path is a regular expression
#                                         (the plugin's "empty cache" sends
#                                         /.*)
#                 X-Purge-Method: tags    X-Cache-Tags-Pattern is a regular
#                                         expression over the object's
#                                         X-Cache-Tags
#                 otherwise (exact)       the path exactly
#               always on this Host; 200 "Purged", also when nothing matched.
#               From elsewhere: 405 "PURGE not allowed for this IP address".
# BAN, tags     every other method is passed to WordPress, which answers it
#               (the test origin: 200), so a BAN bans nothing.
#
# Evidence: Varnish's own only: X-Varnish (two ids on a hit) and Age.

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purge {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "PURGE not allowed for this IP address"));
        }
        if (req.http.X-Purge-Method == "regex") {
            ban("obj.http.x-url ~ " + req.url + " && obj.http.x-host == " + req.http.host);
        } elsif (req.http.X-Purge-Method == "tags" && req.http.X-Cache-Tags-Pattern) {
            ban("obj.http.X-Cache-Tags ~ " + req.http.X-Cache-Tags-Pattern + " && obj.http.x-host == " + req.http.host);
        } else {
            ban("obj.http.x-url == " + req.url + " && obj.http.x-host == " + req.http.host);
        }
        return (synth(200, "Purged"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        # WordPress handles the rest itself.
        return (pass);
    }
    # Logged-in users and comment authors see their own pages.
    if (req.http.Cookie ~ "wordpress_logged_in_|comment_author_") {
        return (pass);
    }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_response {
    # What the bans read, so the ban lurker can apply them.
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.host;
    set beresp.grace = {{.Grace}}s;
}

sub vcl_deliver {
    unset resp.http.x-url;
    unset resp.http.x-host;
}
