// SaslHandshake (key 17) v0-1 and SaslAuthenticate (key 36) v0-1: SaslHandshakeRequest.json /
// SaslHandshakeResponse.json, SaslAuthenticateRequest.json / SaslAuthenticateResponse.json
// (SaslAuthenticate v2+ is flexible: not served). And the two pieces of the PLAIN and SCRAM
// messages the listener reads before handing them to PostgreSQL (src/kafka_auth.cpp).
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

namespace {
constexpr std::size_t max_sasl_part = 1024;
}

SaslHandshakeRequest decode_sasl_handshake_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::sasl_handshake, version);
    SaslHandshakeRequest r;
    r.mechanism = in.string();
    in.expect_end("SaslHandshake request");
    return r;
}

SaslAuthenticateRequest decode_sasl_authenticate_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::sasl_authenticate, version);
    SaslAuthenticateRequest r;
    r.auth_bytes = in.bytes();
    in.expect_end("SaslAuthenticate request");
    return r;
}

void encode_sasl_handshake_response(Writer &out, std::int16_t version, const SaslHandshakeResponse &r)
{
    check_version(ApiKey::sasl_handshake, version);
    out.int16(r.error_code);
    out.array_count(r.mechanisms.size());
    for (const std::string &m : r.mechanisms)
        out.string(m);
}

void encode_sasl_authenticate_response(Writer &out, std::int16_t version, const SaslAuthenticateResponse &r)
{
    check_version(ApiKey::sasl_authenticate, version);
    out.int16(r.error_code);
    if (r.error_message)
        out.nullable_string(std::string_view(*r.error_message));
    else
        out.nullable_string(std::nullopt);
    out.bytes(r.auth_bytes);
    if (version >= 1)
        out.int64(r.session_lifetime_ms);
}

bool parse_sasl_plain(std::string_view message, PlainCredentials *out)
{
    std::size_t first = message.find('\0');
    if (first == std::string_view::npos)
        return false;
    std::size_t second = message.find('\0', first + 1);
    if (second == std::string_view::npos)
        return false;
    out->authzid = message.substr(0, first);
    out->user = message.substr(first + 1, second - first - 1);
    out->password = message.substr(second + 1);
    return !out->user.empty() && out->password.find('\0') == std::string_view::npos &&
           out->authzid.size() <= max_sasl_part && out->user.size() <= max_sasl_part &&
           out->password.size() <= max_sasl_part;
}

bool scram_client_first_user(std::string_view message, std::string *user)
{
    if (message.size() > max_sasl_part)
        return false;
    // gs2-header: a channel-binding flag ("n", "y" or "p=..."), a comma, an optional "a=authzid", a comma.
    std::size_t comma = message.find(',');
    if (comma == std::string_view::npos)
        return false;
    std::size_t second = message.find(',', comma + 1);
    if (second == std::string_view::npos)
        return false;
    std::string_view bare = message.substr(second + 1);
    if (bare.size() < 2 || bare[0] != 'n' || bare[1] != '=')
        return false;
    std::string_view name = bare.substr(2, bare.find(',') == std::string_view::npos ? std::string_view::npos
                                                                                   : bare.find(',') - 2);
    user->clear();
    for (std::size_t i = 0; i < name.size(); i++) {
        if (name[i] != '=') {
            if (name[i] == '\0')
                return false;
            user->push_back(name[i]);
        } else if (name.substr(i, 3) == "=2C") {
            user->push_back(',');
            i += 2;
        } else if (name.substr(i, 3) == "=3D") {
            user->push_back('=');
            i += 2;
        } else {
            return false;
        }
    }
    return !user->empty();
}

}  // namespace pgtopic::kafka
