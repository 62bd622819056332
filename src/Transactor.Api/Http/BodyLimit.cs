namespace Transactor.Api.Http;

/// <summary>
/// Endpoint metadata: the largest body the endpoint accepts, when it is not <see cref="JsonBody.MaxBytes"/>.
/// The endpoint reads its body with this limit, and the signature check (which reads the body before
/// the endpoint does) with the same one, so that a signed request may carry any body the endpoint
/// accepts unsigned, and a larger one is refused the same way: 413 <c>payload_too_large</c>.
/// </summary>
internal sealed record BodyLimit(int MaxBytes)
{
    /// <summary>The body limit of the endpoint <paramref name="context"/> is routed to; <see cref="JsonBody.MaxBytes"/> for any other.</summary>
    public static int Of(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.GetEndpoint()?.Metadata.GetMetadata<BodyLimit>()?.MaxBytes ?? JsonBody.MaxBytes;
    }
}
