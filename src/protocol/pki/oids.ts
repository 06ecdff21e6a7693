/** Object identifiers of the certificate profile (PROTOCOL.md §3). */

/** GSMA certificate policies (SGP.22 §4.5.2.1). */
export const POLICY_CI = '2.23.146.1.2.1.0';
export const POLICY_EUICC = '2.23.146.1.2.1.1';
export const POLICY_EUM = '2.23.146.1.2.1.2';

/**
 * The Handover SM role policy: a UUID-derived OID under 2.25 (ITU-T X.667), from UUID
 * 9fd2810d-64d1-4842-9411-64fed63f3c10. Defined only here; documented in README.md.
 */
export const POLICY_SM = '2.25.212440251162100429061593064612372102160';

export const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  country: '2.5.4.6',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
} as const;
